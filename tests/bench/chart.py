"""results.svg: the bench's req/s as a bar chart, beside results.md.

Hand-written SVG (no plotting library): horizontal bars, one per setup row of
the table, grouped by algorithm and path (hot, cold, session) so that ours
stands beside Envoy's native jwt_authn and the hop for the same work; the
setups without authentication (no auth, the no-op Wasm filter) are bars of
their own group and dashed lines across every group, the ceiling any filter
is measured against. Horizontal bars because the setups' names are long.
"""

import math
import re
from xml.sax.saxutils import escape, quoteattr

from report import Summary

WIDTH = 900
LABEL_WIDTH = 230  # the bar names, right-aligned against the plot
VALUE_ROOM = 70  # right of the longest bar, for its value
MARGIN = 16
TITLE_HEIGHT = 58
BAR_HEIGHT = 16
BAR_GAP = 4
GROUP_HEADER = 22
GROUP_GAP = 8
# A generous width of one bold 12 px character, for the patch under a group title.
TITLE_CHAR_WIDTH = 7.6
AXIS_HEIGHT = 40
LEGEND_COLUMNS = 2
LEGEND_ROW = 20
FONT = "font-family=\"DejaVu Sans, Arial, Helvetica, sans-serif\""

# Bar colours by who does the work, the same in every group.
FAMILIES = {
    "ours": ("ours (oidc_filter)", "#1f77b4"),
    "native": ("Envoy's native jwt_authn", "#ff7f0e"),
    "hop": ("the hop: ext_authz → Apache mod_auth_openidc", "#9467bd"),
    "reference": ("no authentication (references)", "#9e9e9e"),
}
# Reference lines: setup kind -> (legend text, dash pattern).
REFERENCE_LINES = {"no-auth": ("no auth filter", "6 3"), "noop-wasm": ("no-op Wasm filter", "2 3")}

# Groups in reading order: (path, title, kinds in order). A setup of a kind in
# no group still gets a bar, in a last group, so no table row goes missing.
PATHS = (
    ("hot", "hot: the same token again", ("ours-hot", "native-cached", "hop-hot")),
    ("cold", "cold: a new token on every request",
     ("ours-cold", "ours-module-cold", "native-uncached", "hop-cold")),
    ("session", "session cookie", ("ours-session", "noop-wasm-session")),
)
REFERENCE_KINDS = ("no-auth", "noop-wasm")
# What a bar says within its group (the group names the algorithm and path).
SHORT_NAMES = {
    "no-auth": "no auth filter",
    "noop-wasm": "no-op Wasm filter",
    "noop-wasm-session": "no-op Wasm filter (same cookie)",
    "native-uncached": "native jwt_authn, no cache",
    "native-cached": "native jwt_authn + cache",
    "hop-hot": "the hop",
    "hop-cold": "the hop",
    "ours-hot": "ours",
    "ours-cold": "ours",
    "ours-module-cold": "ours, module crypto only",
    "ours-session": "ours",
}
ENVOY_VERSION = re.compile(r"/(\d+\.\d+\.\d+)/")


def family(kind: str) -> str:
    if kind.startswith("ours-"):
        return "ours"
    if kind.startswith("native-"):
        return "native"
    if kind.startswith("hop-"):
        return "hop"
    return "reference"


def groups(summary: Summary) -> list[tuple[str, list]]:
    """(title, setups) in drawing order; every setup exactly once."""
    placed: set[int] = set()
    found = []

    def take(title: str, chosen: list) -> None:
        chosen = [s for s in chosen if id(s) not in placed]
        placed.update(id(s) for s in chosen)
        if chosen:
            found.append((title, chosen))

    take("references: no authentication", [s for k in REFERENCE_KINDS for s in summary.setups if s.kind == k and not s.alg])
    algs = list(dict.fromkeys(s.alg for s in summary.setups if s.alg))
    for alg in algs:
        for _, title, kinds in PATHS:
            take(f"{alg} · {title}", [s for k in kinds for s in summary.setups if s.kind == k and s.alg == alg])
    take("other setups", list(summary.setups))
    return found


def envoy_version(summary: Summary) -> str | None:
    """The release in the context's Envoy line (`…/1.40.0/Clean/RELEASE/BoringSSL`)."""
    for line in summary.context:
        if line.startswith("Envoy:"):
            match = ENVOY_VERSION.search(line)
            if match:
                return match.group(1)
    return None


def nice_step(maximum: float, ticks: int = 5) -> float:
    """A round tick step (1, 2, 2.5 or 5 × a power of ten) giving about `ticks` ticks."""
    raw = max(maximum, 1.0) / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(f * power for f in (1, 2, 2.5, 5, 10) if f * power >= raw)


def tick_label(value: float) -> str:
    if value >= 1000 and value % 1000 == 0:
        return f"{value / 1000:,.0f}k"
    if value >= 1000:
        return f"{value / 1000:,.1f}k"
    return f"{value:g}"


def text(x: float, y: float, content: str, **attributes) -> str:
    extra = "".join(f" {name.replace('_', '-')}={quoteattr(str(value))}" for name, value in attributes.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(content)}</text>'


def svg(summary: Summary, date: str | None = None) -> str:
    """The chart of `summary` (the Summary report.py writes results.md from);
    `date` (e.g. 2026-12-07) goes into the title."""
    drawn = groups(summary)
    rows = sum(len(setups) for _, setups in drawn)
    plot_top = MARGIN + TITLE_HEIGHT
    plot_height = len(drawn) * (GROUP_HEADER + GROUP_GAP) + rows * (BAR_HEIGHT + BAR_GAP)
    legend_rows = math.ceil((len(FAMILIES) + len(REFERENCE_LINES)) / LEGEND_COLUMNS)
    height = plot_top + plot_height + AXIS_HEIGHT + legend_rows * LEGEND_ROW + MARGIN
    plot_left = MARGIN + LABEL_WIDTH
    plot_width = WIDTH - plot_left - VALUE_ROOM - MARGIN
    largest = max((s.rps() for s in summary.setups), default=1.0)
    step = nice_step(largest)
    axis_max = step * math.ceil(largest / step)

    def x_of(value: float) -> float:
        return plot_left + plot_width * value / axis_max

    version = envoy_version(summary)
    title = "oidc_filter benchmark: requests/s (median over rounds)"
    subtitle = ", ".join(part for part in (f"Envoy {version}" if version else None, date) if part)
    rounds = max((len(s.runs) for s in summary.setups), default=0)
    subtitle = "; ".join(part for part in (subtitle, f"{rounds} round(s), one Envoy worker; higher is better") if part)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" {FONT} font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        text(MARGIN, MARGIN + 18, title, font_size=17, font_weight="bold", fill="#222222"),
        text(MARGIN, MARGIN + 40, subtitle, fill="#555555"),
    ]
    axis_y = plot_top + plot_height
    # Grid lines and tick labels first, so bars and lines are drawn over them.
    for index in range(round(axis_max / step) + 1):
        tick = index * step  # not a running sum: 0.1 + 0.2 is not 0.3
        x = x_of(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{plot_top}" x2="{x:.1f}" y2="{axis_y}" stroke="#e4e4e4"/>')
        parts.append(text(x, axis_y + 16, tick_label(tick), text_anchor="middle", fill="#444444", **{"class": "tick"}))
    parts.append(f'<line x1="{plot_left}" y1="{axis_y}" x2="{plot_left + plot_width}" y2="{axis_y}" stroke="#444444"/>')
    parts.append(f'<line x1="{plot_left}" y1="{plot_top}" x2="{plot_left}" y2="{axis_y}" stroke="#444444"/>')
    parts.append(text(plot_left + plot_width / 2, axis_y + 34, "requests/s", text_anchor="middle", fill="#444444"))

    y = plot_top
    # Group titles run into the plot: drawn last, on a white patch, so that
    # no grid or reference line crosses them.
    titles = []
    for group_title, setups in drawn:
        y += GROUP_GAP
        titles.append(f'<rect x="{MARGIN - 2}" y="{y + 1}" width="{len(group_title) * TITLE_CHAR_WIDTH + 8:.0f}" '
                      f'height="{GROUP_HEADER - 4}" fill="#ffffff"/>')
        titles.append(text(MARGIN, y + 14, group_title, font_weight="bold", fill="#222222"))
        y += GROUP_HEADER
        for setup in setups:
            value = setup.rps()
            colour = FAMILIES[family(setup.kind)][1]
            tooltip = f"{setup.name}: {value:,.0f} req/s (median), p99 {setup.p99_ms():.2f} ms"
            parts.append(text(plot_left - 6, y + BAR_HEIGHT - 4, SHORT_NAMES.get(setup.kind, setup.name),
                              text_anchor="end", fill="#222222"))
            parts.append(
                f'<rect x="{plot_left}" y="{y}" width="{max(x_of(value) - plot_left, 0.5):.1f}" '
                f'height="{BAR_HEIGHT}" fill="{colour}" data-setup={quoteattr(setup.name)} '
                f'data-kind={quoteattr(setup.kind)} data-rps="{value:.1f}"><title>{escape(tooltip)}</title></rect>'
            )
            parts.append(text(x_of(value) + 4, y + BAR_HEIGHT - 4, f"{value:,.0f}", fill="#222222"))
            y += BAR_HEIGHT + BAR_GAP

    legend = []
    for kind, (label, dashes) in REFERENCE_LINES.items():
        reference = summary.find(kind)
        if reference is None:
            continue
        x = x_of(reference.rps())
        parts.append(
            f'<line x1="{x:.1f}" y1="{plot_top}" x2="{x:.1f}" y2="{axis_y}" stroke="#555555" '
            f'stroke-width="1.2" stroke-dasharray="{dashes}" data-reference={quoteattr(kind)}/>'
        )
        legend.append(("line", f"{label}: {reference.rps():,.0f} req/s", dashes))
    parts += titles
    shown = {family(s.kind) for s in summary.setups}
    legend = [("bar", label, colour) for key, (label, colour) in FAMILIES.items() if key in shown] + legend

    # The legend below the axis, entries left to right in two columns.
    legend_top = axis_y + AXIS_HEIGHT
    column_width = (WIDTH - 2 * MARGIN) / LEGEND_COLUMNS
    for index, (shape, label, style) in enumerate(legend):
        x = MARGIN + (index % LEGEND_COLUMNS) * column_width
        row_y = legend_top + (index // LEGEND_COLUMNS) * LEGEND_ROW
        if shape == "bar":
            parts.append(f'<rect x="{x:.1f}" y="{row_y}" width="14" height="12" fill="{style}"/>')
        else:
            parts.append(f'<line x1="{x:.1f}" y1="{row_y + 6}" x2="{x + 14:.1f}" y2="{row_y + 6}" '
                         f'stroke="#555555" stroke-width="1.2" stroke-dasharray="{style}"/>')
        parts.append(text(x + 20, row_y + 11, label, fill="#222222", **{"class": "legend"}))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
