"""Load and memory helpers shared by test_robustness.py (bounded) and scripts/soak.sh (long):
wrk with a response checker, RSS sampling. (Snapshot damage and file replacement: testkit.snapshots.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECK_LUA = HERE / "check.lua"
WRK = shutil.which("wrk") or "/usr/bin/wrk"


# --------------------------------------------------------------------------- wrk


class Wrk:
    """One wrk run in the background: every response is checked against `allowed` outcomes
    ("STATUS" or "STATUS LOCATION"), see check.lua."""

    def __init__(self, port: int, method: str, path: str, client: str | None, allowed: list[str],
                 duration: float, connections: int = 8, threads: int = 2, timeout: str = "5s",
                 keepalive: bool = True):
        self.duration = duration
        cmd = [WRK, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s", "--timeout", timeout,
               "-s", str(CHECK_LUA), f"http://127.0.0.1:{port}", "--", method, path, client or "-", "keep" if keepalive else "close", *allowed]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.started = time.monotonic()

    def result(self) -> dict:
        try:
            out, _ = self.proc.communicate(timeout=self.duration + 60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            out, _ = self.proc.communicate()
            raise AssertionError(f"wrk did not finish:\n{out}")
        for line in out.splitlines():
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
                result["errors"] = (result["connect_errors"] + result["read_errors"] + result["write_errors"]
                                    + result["timeouts"])
                result["output"] = out
                return result
        raise AssertionError(f"wrk printed no result ({self.proc.returncode}):\n{out}")


def problems_of(result: dict, minimum_requests: int = 1) -> list[str]:
    """Failed or wrong responses in a wrk result."""
    out = []
    if result["wrong"]:
        out.append(f"{result['wrong']} wrong answers of {result['checked']}: {result['examples'][:300]}")
    if result["errors"]:
        out.append(f"socket errors: connect {result['connect_errors']} read {result['read_errors']} "
                   f"write {result['write_errors']} timeout {result['timeouts']}")
    if result["checked"] != result["requests"]:
        out.append(f"{result['requests']} requests but {result['checked']} checked responses")
    if result["requests"] < minimum_requests:
        out.append(f"only {result['requests']} requests (want ≥ {minimum_requests})")
    return out


# --------------------------------------------------------------------------- memory


def rss_kb(pid: int) -> int:
    """VmRSS of a process in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class RssSampler:
    """Samples the total RSS of the processes `pids()` returns every `interval` seconds."""

    pids: object
    interval: float = 1.0
    samples: list[tuple[float, int]] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            total = sum(rss_kb(pid) for pid in self.pids())
            self.samples.append((time.monotonic() - self._started, total))
            self._stop.wait(self.interval)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(10)
        values = [kb for _, kb in self.samples if kb > 0]
        if not values:
            return {"samples": 0}
        # growth: the last quarter's median against the second quarter's (after warm-up)
        n = len(values)
        early = sorted(values[n // 4: max(n // 2, n // 4 + 1)])
        late = sorted(values[3 * n // 4:] or values[-1:])
        return {"samples": n, "first_kb": values[0], "min_kb": min(values), "max_kb": max(values),
                "last_kb": values[-1], "early_median_kb": early[len(early) // 2],
                "late_median_kb": late[len(late) // 2],
                "growth_kb": late[len(late) // 2] - early[len(early) // 2]}
