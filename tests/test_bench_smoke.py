"""`make bench` in its tiny mode, so the benchmark cannot rot unnoticed.

The bench itself exits 1 when any response of any setup is not 2xx (a bench
measuring an error path is broken); this test runs it with `--quick` (one
round, one second per setup, a few thousand tokens) and checks the table,
and the chart beside it (results.svg: a bar per row of the table).
The auth hop's rows are in it too (Envoy's ext_authz calling Apache with
mod_auth_openidc, which `make test-e2e` installs with `make auth-hop`): before
measuring, the bench has checked that the hop refuses a forged token, another
audience and another issuer. The first-request phase (bench/first_request.py)
writes a line per algorithm for keys that arrived by a JWKS fetch and for an
inline JWKS.
"""

import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent / "bench" / "bench.py"
SETUP_TITLES = [
    "no auth filter",
    "no-op Wasm filter (reference)",
    "ours, opaque token by introspection, hot (same token)",
] + [
    f"{kind} {alg}"
    for alg in ("ES256", "RS256")
    for kind in (
        "native jwt_authn, no cache",
        "native jwt_authn + jwt_cache_config",
        "hop: ext_authz → Apache mod_auth_openidc, hot (same token)",
        "hop: ext_authz → Apache mod_auth_openidc, cold (new token each request)",
        "ours, hot (same token)",
        "ours, cold (new token each request)",
        "ours, cold (new token each request), module crypto only",
        "ours, session cookie",
        "no-op Wasm filter, the session's cookie (reference)",
    )
]

FIRST_REQUEST_ALGS = ("ES256", "RS256", "EdDSA")
FIRST_REQUEST_CASES = ("first request after a JWKS fetch", "first request after a configuration load (inline jwks)")

SVG_NAMESPACE = "http://www.w3.org/2000/svg"

pytestmark = pytest.mark.idp


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of every row of the markdown table."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]


def row_of(rows: list[list[str]], title: str) -> list[str] | None:
    """The row of a setup; a cold row may end in "(N repeated tokens)"."""
    return next((row for row in rows if row[0] == title or row[0].startswith(f"{title} (")), None)


def setup_rows(rows: list[list[str]]) -> dict[str, float]:
    """Setup title (without "(N repeated tokens)") -> req/s, for every row under the header."""
    return {
        re.sub(r" \(\d+ repeated tokens\)$", "", row[0]): float(row[1].replace(",", ""))
        for row in rows[1:]  # under the header (table_rows leaves out the |---| line)
    }


def assert_chart_matches_table(chart_path: Path, rows: list[list[str]]) -> None:
    """results.svg beside results.md: one bar per setup row, of its req/s."""
    assert chart_path.is_file(), f"no chart {chart_path.name} beside the table"
    root = ElementTree.parse(chart_path).getroot()
    assert root.tag == f"{{{SVG_NAMESPACE}}}svg", root.tag
    bars = [rect for rect in root.iter(f"{{{SVG_NAMESPACE}}}rect") if "data-setup" in rect.attrib]
    drawn = {}
    for bar in bars:
        setup = bar.attrib["data-setup"]
        assert setup not in drawn, f"two bars for {setup!r}"
        drawn[setup] = (float(bar.attrib["data-rps"]), float(bar.attrib["width"]))
    table = setup_rows(rows)
    assert sorted(drawn) == sorted(table), f"bars {sorted(drawn)}\nrows {sorted(table)}"
    for setup, rps in table.items():
        value, width = drawn[setup]
        # The table rounds to whole requests/s, the bar's data-rps to tenths.
        assert value > 0 and width > 0 and abs(value - rps) <= 0.55, f"{setup}: bar {value} ({width} px), table {rps}"


def test_quick_bench_serves_only_2xx_and_writes_the_table(wasm_path, tmp_path):
    output = tmp_path / "results.md"
    completed = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--wasm", str(wasm_path), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert completed.returncode == 0, f"bench failed:\n{completed.stderr[-3000:]}\n{completed.stdout[-3000:]}"
    rows = table_rows(output.read_text())
    for title in SETUP_TITLES:
        row = row_of(rows, title)
        assert row is not None, f"no row for {title!r} in:\n{output.read_text()}"
        assert float(row[1].replace(",", "")) > 0, row
    text = output.read_text()
    assert f"{wasm_path.stat().st_size:,} bytes" in text, "the module size is reported"
    assert "Wasm VM memory after" in text
    # Ours against the hop: a ratio in the "× the hop" column and a goal line per algorithm.
    header = rows[0]
    hop_column = header.index("× the hop (same alg and path)")
    for alg in ("ES256", "RS256"):
        for path in (
            "ours, hot (same token)",
            "ours, cold (new token each request)",
            "ours, cold (new token each request), module crypto only",
        ):
            assert row_of(rows, f"{path} {alg}")[hop_column].endswith("×"), f"no hop ratio for {path} {alg}"
        assert f"- goal: cold {alg} vs the hop cold: " in text
        # The session path against the no-op filter given the same cookie.
        assert f"- goal: session {alg} vs the no-op Wasm filter (same cookie): " in text
    assert "what mod_auth_openidc caches" in text
    # Opaque tokens: the cached path beside the hot JWT path, and a new token's one call.
    assert "- goal: hot opaque token (introspection cached) vs hot ES256 JWT: " in text
    assert re.search(r"opaque token, first request .*; (\d+) tokens made \1 introspection calls", text), text
    # The footprint table: every setup at the goal's worker count, and the goal lines.
    footprint = text.split("## Footprint per Envoy", 1)[1]
    for setup in ("no filter", "no-op Wasm filter", "ours, bearer tokens", "ours, browser login"):
        assert row_of(table_rows(footprint), setup) is not None, setup
        assert f"- goal: {setup}, RSS over the no-op filter at 2 workers: " in footprint or not setup.startswith("ours")
    # The first request after a key set arrives, against the later new-token requests.
    for case in FIRST_REQUEST_CASES:
        for alg in FIRST_REQUEST_ALGS:
            line = rf"- {re.escape(case)}, {alg}: [0-9.]+ ms \(later new-token requests: [0-9.]+ ms median; "
            assert re.search(line, text), f"no line for {case}, {alg} in:\n{text}"
    assert "first request after a JWKS fetch, ES256: " in completed.stdout, "the phase prints its lines"
    # The setups' table only (the footprint table comes later).
    assert_chart_matches_table(output.with_suffix(".svg"), table_rows(text.split("## Goals", 1)[0]))
