"""Load, fault and memory helpers shared by test_robustness.py (bounded) and scripts/soak.sh
(long): wrk with a response checker, RSS sampling, snapshot damage, in-place file rewrites."""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
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


# --------------------------------------------------------------------------- snapshots


def sections(data: bytes) -> list[tuple[str, int, int]]:
    count = struct.unpack_from("<I", data, 12)[0]
    out = []
    for i in range(count):
        tag, _, offset, length = struct.unpack_from("<4sIII", data, 64 + 16 * i)
        out.append((tag.decode(errors="replace"), offset, length))
    return out


def corruptions(data: bytes, seed: int, truncations: int, flips: int) -> list[tuple[str, bytes]]:
    """Damaged copies of a snapshot: truncations at the interesting lengths (empty, inside the
    header, at and around every section boundary) and then random ones; single-bit flips in the
    header, in every section, then anywhere. The checksum is left as it is."""
    rng = random.Random(seed)
    size = len(data)
    lengths = [0, 1, 8, 63, 64, 65, size // 2, size - 8, size - 1]
    for _, offset, length in sections(data):
        lengths += [offset - 1, offset, offset + 1, offset + length - 1]
    lengths = [n for n in dict.fromkeys(lengths) if 0 <= n < size]
    while len(lengths) < truncations:
        lengths.append(rng.randrange(size))
    out = [(f"truncated to {n} bytes", data[:n]) for n in lengths[:truncations]]
    positions = [rng.randrange(64) for _ in range(4)] + [offset + rng.randrange(max(length, 1))
                                                         for _, offset, length in sections(data)]
    while len(positions) < flips:
        positions.append(rng.randrange(size))
    for at in positions[:flips]:
        bit = rng.randrange(8)
        damaged = bytearray(data)
        damaged[at] ^= 1 << bit
        out.append((f"bit {bit} of byte {at} flipped", bytes(damaged)))
    return out


def replace_atomically(data: bytes, dest: Path) -> None:
    """Writes a new file and renames it over `dest` (what a deployment should do)."""
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    os.replace(tmp, dest)


def write_in_place(data: bytes, dest: Path, chunk: int = 64 * 1024, pause: float = 0.002) -> None:
    """Rewrites `dest` in place the way `cp new live` does: truncate, then write in chunks, so a
    reader can see an empty, a partial and finally the whole new file (same inode)."""
    with open(dest, "r+b") as f:
        f.truncate(0)
        f.flush()
        for start in range(0, len(data), chunk):
            f.write(data[start:start + chunk])
            f.flush()
            time.sleep(pause)
        f.truncate(len(data))
