"""Stopping the processes the harness starts: SIGTERM, then SIGKILL if it lingers."""

import signal
import subprocess


def terminate(process: subprocess.Popen | None, timeout: float) -> None:
    """Stop `process` (if still running) within about 2 x `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
