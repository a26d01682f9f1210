"""Server processes for tests: each in its own session (so a test's shell exiting cannot signal
it), output to a log file, stopped by PID; any still running at interpreter exit are stopped."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .http import accepts

# Every process started here, stopped at interpreter exit if a test left it running.
_STARTED: list["Process"] = []


@atexit.register
def _stop_leftovers() -> None:
    for process in _STARTED:
        process.stop(timeout=5)


def run(cmd, timeout: float = 120, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Runs a command with a time bound, capturing text output; raises AssertionError with the
    output when `check` and it fails."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def read_text(path: Path) -> str:
    """A log file's text so far ("" when there is none yet)."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def python_env() -> dict:
    """The environment for a child Python process that imports what this one does (the kit, the
    harness, the integration helpers)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Polls `predicate` until it returns something true (returned), or raises TimeoutError;
    exceptions count as "not yet"."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - polled until the deadline
            last = e
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout}s" + (f" (last: {last})" if last else ""))


class Process:
    """A server process in its own session, stopped by PID; stdout and stderr go to `log`."""

    # Signals `stop` sends in turn (each waited for) before SIGKILL.
    stop_signals: tuple[int, ...] = (signal.SIGTERM,)

    def __init__(self, name: str, cmd: list, log: Path, cwd: Path | None = None, env: dict | None = None):
        self.name, self.cmd, self.log, self.cwd = name, [str(c) for c in cmd], log, cwd
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log_file = None

    def start(self) -> "Process":
        self.log_file = open(self.log, "ab")
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        _STARTED.append(self)
        return self

    def start_listening(self, port: int, timeout: float = 30.0) -> "Process":
        """start(), then wait until the process accepts connections on 127.0.0.1:port."""
        self.start()
        deadline = time.monotonic() + timeout
        while not accepts(port):
            self.check_running()
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.name} did not listen on {port} in {timeout}s:\n{self.log_text()[-4000:]}")
            time.sleep(0.05)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_running(self) -> None:
        """Raises AssertionError (with the log's end) when the process is not running."""
        if not self.running:
            code = self.proc.returncode if self.proc else "?"
            raise AssertionError(f"{self.name} exited {code}:\n{self.log_text()[-4000:]}")

    def signal(self, sig: int) -> None:
        self.check_running()
        os.kill(self.proc.pid, sig)

    def stop(self, sig: int | None = None, timeout: float = 15.0) -> int | None:
        """Stops the process by PID (`sig`, else `stop_signals`, then SIGKILL); returns its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            signals = (sig,) if sig is not None else self.stop_signals
            for s, wait in [(s, timeout if i == 0 else 5) for i, s in enumerate(signals)] + [(signal.SIGKILL, 5)]:
                try:
                    os.kill(self.proc.pid, s)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.log_file is not None:
            self.log_file.close()
        return self.proc.returncode

    def log_text(self) -> str:
        return read_text(self.log)

    def problems(self) -> list[str]:
        """What the process's logs show went wrong (none by default)."""
        return []

