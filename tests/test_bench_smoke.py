"""`make bench` in its tiny mode, so the benchmark cannot rot unnoticed.

The bench itself exits 1 when any response of any setup is not 2xx (a bench
measuring an error path is broken); this test runs it with `--quick` (one
round, one second per setup, a few thousand tokens) and checks the table.
"""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent / "bench" / "bench.py"
SETUP_TITLES = ["no auth filter"] + [
    f"{kind} {alg}"
    for alg in ("ES256", "RS256")
    for kind in (
        "native jwt_authn, no cache",
        "native jwt_authn + jwt_cache_config",
        "ours, hot (same token)",
        "ours, cold (new token each request)",
        "ours, session cookie",
    )
]

pytestmark = pytest.mark.idp


def table_rows(markdown: str) -> dict[str, list[str]]:
    """Setup title -> its table cells."""
    rows = {}
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) > 2:
            rows[cells[0].split(" (")[0] if cells[0].startswith("ours, cold") else cells[0]] = cells
    return rows


def test_quick_bench_serves_only_2xx_and_writes_the_table(wasm_path, tmp_path):
    output = tmp_path / "results.md"
    completed = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--wasm", str(wasm_path), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert completed.returncode == 0, f"bench failed:\n{completed.stderr[-3000:]}\n{completed.stdout[-3000:]}"
    rows = table_rows(output.read_text())
    for title in SETUP_TITLES:
        assert title in rows, f"no row for {title!r} in:\n{output.read_text()}"
        requests_per_second = float(rows[title][1].replace(",", ""))
        assert requests_per_second > 0, rows[title]
    assert "dist/oidc_filter.wasm" in output.read_text()
    assert "Wasm VM memory after" in output.read_text()
