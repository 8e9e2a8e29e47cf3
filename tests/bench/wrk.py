"""Runs Debian's wrk with requests.lua and reads its result line."""

import json
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.envoy import _die_with_parent

LUA_SCRIPT = Path(__file__).resolve().parent / "requests.lua"
RESULT_PREFIX = "bench-result "
# wrk stops on its own after the duration; this is only for a wedged wrk.
GRACE_SECONDS = 30


class WrkError(RuntimeError):
    pass


@dataclass(frozen=True)
class Load:
    """How wrk loads Envoy: the same for every setup."""

    connections: int
    threads: int
    cpus: str | None  # taskset CPU list for wrk, or None


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_us: int
    p50_us: int
    p99_us: int
    ok: int
    not_ok: int
    last_bad_status: int
    repeated: int  # requests that reused a header value already sent (values ran out)
    socket_errors: int
    timeouts: int
    wrk_cpu_seconds: float

    @property
    def seconds(self) -> float:
        return self.duration_us / 1e6

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def all_2xx(self) -> bool:
        return self.not_ok == 0 and self.socket_errors == 0 and self.timeouts == 0 and self.ok > 0

    def failure(self) -> str:
        return (
            f"{self.ok} 2xx, {self.not_ok} other (last status {self.last_bad_status}), "
            f"{self.socket_errors} socket errors, {self.timeouts} timeouts"
        )


def wrk_binary() -> str:
    binary = shutil.which("wrk")
    if binary is None:
        raise WrkError("wrk is missing: run `bash tests/install-wrk.sh` (make bench does)")
    return binary


def run_wrk(url: str, values_file: Path, header: str, first_line: int, seconds: int, load: Load) -> WrkResult:
    """One wrk run of `seconds` against `url`; every request carries
    `header: <a line of values_file>`, starting at line `first_line` (1-based)."""
    command = [
        wrk_binary(),
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{seconds}s",
        "--latency",
        "-s", str(LUA_SCRIPT),
        url,
        "--", str(values_file), header, str(first_line),
    ]  # fmt: skip
    if load.cpus:
        command = ["taskset", "-c", load.cpus, *command]
    cpu_before = _children_cpu_seconds()
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=seconds + GRACE_SECONDS,
        preexec_fn=_die_with_parent,
    )
    wrk_cpu = _children_cpu_seconds() - cpu_before
    if completed.returncode != 0:
        raise WrkError(f"wrk exited with {completed.returncode}:\n{completed.stderr}{completed.stdout}")
    return _parse(completed.stdout, wrk_cpu)


def _parse(stdout: str, wrk_cpu: float) -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return WrkResult(**json.loads(line[len(RESULT_PREFIX) :]), wrk_cpu_seconds=wrk_cpu)
    raise WrkError(f"no result line in wrk's output:\n{stdout}")


def _children_cpu_seconds() -> float:
    """CPU time of every waited-for child so far: the difference around one
    wrk run is that run's (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
