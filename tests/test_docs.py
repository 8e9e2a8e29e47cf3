"""The documentation's links resolve, and its metric names are the code's.

Pure file checks: no Envoy, no build.
"""

import re
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`+[^`]*`+")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=[\"']([^\"']+)[\"']")


def markdown_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    files = {REPO_ROOT / name for name in listed}
    files |= {REPO_ROOT / "README.md", REPO_ROOT / "tests" / "README.md", *(REPO_ROOT / "docs").glob("*.md")}
    return sorted(
        path
        for path in files
        if path.exists() and "node_modules" not in path.parts and "filter/fuzz/corpus" not in path.as_posix()
    )


def prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        if fence is None and (stripped.startswith("```") or stripped.startswith("~~~")):
            fence = stripped[:3]
            continue
        if fence is not None:
            if stripped.startswith(fence):
                fence = None
            continue
        yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation but `-` and `_` dropped,
    spaces as `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(path.read_text()):
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def test_every_relative_link_and_anchor_resolves():
    broken = []
    anchor_cache: dict[Path, set[str]] = {}
    for path in markdown_files():
        for number, line in prose_lines(path.read_text()):
            for target in LINK.findall(INLINE_CODE.sub("", line)):
                if re.match(r"(https?:|mailto:)", target):
                    continue
                file_part, _, anchor = target.partition("#")
                destination = (path.parent / file_part).resolve() if file_part else path
                where = f"{path.relative_to(REPO_ROOT)}:{number}: {target}"
                if not destination.exists():
                    broken.append(f"{where} (no such file)")
                    continue
                if anchor and destination.suffix == ".md":
                    if destination not in anchor_cache:
                        anchor_cache[destination] = anchors(destination)
                    if anchor not in anchor_cache[destination]:
                        broken.append(f"{where} (no such anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken)


# ---------------------------------------------------------------- metrics

METRICS_RS = REPO_ROOT / "filter" / "src" / "metrics.rs"
APP_TEMPLATE = re.compile(r"^app\.(?:<name>|\{app\})\.(requests_(?:allowed|denied))$")


def defined_metrics() -> tuple[set[str], set[str]]:
    """(names without the `oidc_filter.` prefix, per-app counter suffixes)."""
    source = METRICS_RS.read_text()
    macro = source[source.index("counters! {") :]
    macro = macro[: macro.index("\n}")]
    counters = set(re.findall(r'=>\s*"([a-z0-9_.]+)"', macro))
    gauge_names = source[source.index("impl Gauge") :]
    gauge_names = gauge_names[gauge_names.index("fn name") :]
    gauge_names = gauge_names[: gauge_names.index("\n    }\n")]
    gauges = set(re.findall(r'=>\s*"([a-z0-9_.]+)"', gauge_names))
    per_app = set(re.findall(r'format!\("app\.\{app\}\.([a-z_]+)"\)', source))
    assert counters and gauges and per_app, "metrics.rs changed shape: update this test"
    return counters | gauges, per_app


# A name followed by a regex character is part of a pattern (`oidc_filter_requests_denied_(.+)`):
# not a mention (the quantifier is possessive, so the match is not shortened to dodge it).
MENTION = re.compile(r"oidc_filter([._])([A-Za-z0-9_.<>{}*\-]++)(?![(\[+?|\\])")


def documented_metrics(text: str, defined: set[str], per_app: set[str]) -> tuple[set[str], set[str]]:
    """(names the text mentions, per-app suffixes it mentions), both in dotted form.
    The Prometheus form (`oidc_filter_requests_denied_rbac`) is mapped back to the
    dotted name it writes out; wildcards (`oidc_filter_*`, regexes) are skipped."""
    by_underscores = {name.replace(".", "_"): name for name in defined}
    names, apps = set(), set()
    for separator, rest in MENTION.findall(text):
        rest = rest.rstrip(".")
        if "*" in rest or rest == "wasm" or rest.endswith(".wasm"):
            continue  # a wildcard, or the module's file name (`dist/oidc_filter.wasm`)
        if "<" in rest and not rest.startswith("app"):
            continue  # the general form, `oidc_filter.<name>`
        if separator == ".":
            template = APP_TEMPLATE.match(rest)
            if template:
                apps.add(template.group(1))
            elif rest.startswith("app."):
                apps.add(rest.rsplit(".", 1)[-1])
            else:
                names.add(rest)
        else:
            if rest.startswith("app_"):
                suffix = next((s for s in per_app if rest.endswith("_" + s)), None)
                apps.add(suffix or rest)
            else:
                names.add(by_underscores.get(rest, rest))
    return names, apps


def test_every_metric_in_the_docs_exists_and_every_metric_is_documented():
    defined, per_app = defined_metrics()
    docs = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
    unknown = []
    for path in docs:
        names, apps = documented_metrics(path.read_text(), defined, per_app)
        unknown += [f"{path.relative_to(REPO_ROOT)}: oidc_filter.{n}" for n in sorted(names - defined)]
        unknown += [f"{path.relative_to(REPO_ROOT)}: per-app {a}" for a in sorted(apps - per_app)]
    assert not unknown, "metrics the code does not define:\n" + "\n".join(unknown)

    operations = (REPO_ROOT / "docs" / "operations.md").read_text()
    names, apps = documented_metrics(operations, defined, per_app)
    missing = [f"oidc_filter.{n}" for n in sorted(defined - names)]
    missing += [f"oidc_filter.app.<name>.{a}" for a in sorted(per_app - apps)]
    assert not missing, "metrics docs/operations.md does not document:\n" + "\n".join(missing)
