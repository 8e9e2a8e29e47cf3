"""tests/bench/chart.py on made-up numbers: no Envoy, no wrk.

The real bench's chart is checked by tests/test_bench_smoke.py; this one
checks what a quick run cannot choose: bar lengths against known values, a
setup name that needs escaping, a setup kind the chart does not know.
"""

import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "bench"))

import chart  # noqa: E402
from report import Measured, MemoryReport, Summary  # noqa: E402
from wrk import WrkResult  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"
CONTEXT = [
    "1 round(s), 0 s warm-up + 1 s measured per setup",
    "Envoy: `--concurrency 1`, pinned to CPU 0; version 9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL",
]
# req/s per (kind, alg), roughly as a real run: the bars must come out in proportion.
RATES = {
    ("no-auth", None): 24_000,
    ("noop-wasm", None): 20_000,
    **{
        (kind, alg): rate
        for alg in ("ES256", "RS256")
        for kind, rate in (
            ("noop-wasm-session", 18_000),
            ("native-uncached", 6_600),
            ("native-cached", 17_500),
            ("hop-hot", 2_500),
            ("hop-cold", 2_400),
            ("ours-hot", 12_400),
            ("ours-cold", 7_000),
            ("ours-module-cold", 4_400),
            ("ours-session", 10_800),
        )
    },
}


def run(rps: float) -> WrkResult:
    return WrkResult(requests=int(rps * 2), duration_us=2_000_000, p50_us=900, p99_us=2100, ok=int(rps * 2),
                     not_ok=0, last_bad_status=0, repeated=0, socket_errors=0, timeouts=0, wrk_cpu_seconds=0.5)


def measured(name: str, kind: str, alg: str | None, rps: float) -> Measured:
    return Measured(name, kind, alg, runs=[run(rps)], envoy_cpu=[1.0])


def summary(setups: list[Measured], context: list[str] = CONTEXT) -> Summary:
    return Summary(setups, "dist/oidc_filter.wasm", 400_000, MemoryReport(0, {}, {}, None), context)


def full_summary() -> Summary:
    return summary([measured(f"{kind} {alg or ''}".strip(), kind, alg, rps) for (kind, alg), rps in RATES.items()])


def bars(root) -> dict[str, tuple[float, float]]:
    """data-setup -> (data-rps, drawn width) of every bar."""
    found = {}
    for rect in root.iter(f"{SVG}rect"):
        if "data-setup" in rect.attrib:
            assert rect.attrib["data-setup"] not in found, f"two bars for {rect.attrib['data-setup']}"
            found[rect.attrib["data-setup"]] = (float(rect.attrib["data-rps"]), float(rect.attrib["width"]))
    return found


def test_one_bar_per_setup_in_proportion_to_its_rate():
    data = full_summary()
    root = ElementTree.fromstring(chart.svg(data, date="2026-12-07"))
    assert root.tag == f"{SVG}svg"
    assert root.attrib["width"] == "900"
    drawn = bars(root)
    assert sorted(drawn) == sorted(s.name for s in data.setups)
    widths_per_rps = [width / rps for rps, width in drawn.values()]
    assert max(widths_per_rps) - min(widths_per_rps) < 0.001, "bar lengths are proportional to req/s"
    for setup in data.setups:
        assert drawn[setup.name][0] == pytest.approx(setup.rps(), abs=0.05)
    # The longest bar fits the width, with room for its value.
    assert max(width for _, width in drawn.values()) < 900 - chart.LABEL_WIDTH - chart.VALUE_ROOM


def test_title_axis_legend_and_reference_lines():
    root = ElementTree.fromstring(chart.svg(full_summary(), date="2026-12-07"))
    texts = [element.text or "" for element in root.iter(f"{SVG}text")]
    assert any("Envoy 1.40.0" in t and "2026-12-07" in t for t in texts), texts[:3]
    ticks = [e.text for e in root.iter(f"{SVG}text") if e.get("class") == "tick"]
    assert ticks[0] == "0" and ticks[-1] == "25k" and len(ticks) >= 4, ticks
    legend = [e.text for e in root.iter(f"{SVG}text") if e.get("class") == "legend"]
    assert any(t.startswith("ours") for t in legend) and any("jwt_authn" in t for t in legend), legend
    assert any(t.startswith("no auth filter: 24,000") for t in legend), legend
    lines = {e.get("data-reference") for e in root.iter(f"{SVG}line")} - {None}
    assert lines == {"no-auth", "noop-wasm"}
    # Every bar's value is written beside it.
    assert "12,400" in texts and "2,400" in texts


def test_bars_are_grouped_by_algorithm_and_path():
    groups = chart.groups(full_summary())
    titles = [title for title, _ in groups]
    assert titles[0].startswith("references")
    assert [t.split(" · ")[0] for t in titles[1:]] == ["ES256"] * 3 + ["RS256"] * 3
    cold = next(setups for title, setups in groups if title.startswith("RS256 · cold"))
    assert [s.kind for s in cold] == ["ours-cold", "ours-module-cold", "native-uncached", "hop-cold"]
    assert all(s.alg == "RS256" for s in cold)


def test_names_are_escaped_and_unknown_setups_still_get_a_bar():
    strange = measured('a <b> & "c" \'d\'', "something-new", "ES256", 1234.5)
    data = summary([measured("no auth filter", "no-auth", None, 9000), strange], context=[])
    text = chart.svg(data)
    root = ElementTree.fromstring(text)  # fails on bad escaping
    drawn = bars(root)
    assert drawn[strange.name][0] == pytest.approx(1234.5)
    texts = [e.text or "" for e in root.iter(f"{SVG}text")]
    assert "other setups" in texts
    # Without a version line or a date, the subtitle names neither.
    assert next(t for t in texts if "round(s)" in t).startswith("1 round(s)"), texts[:3]


@pytest.mark.parametrize(
    "largest, step", [(24_684, 5000), (9_490, 2000), (1_000, 200), (130, 50), (0.5, 0.2)]
)
def test_tick_steps_are_round(largest, step):
    assert chart.nice_step(largest) == pytest.approx(step)
