"""Health states for suites whose cases name one (docs/conformance.md, "Health states").

The harness writes the state files itself with the independent encoder of the integration tests
(Tests/Integration/health_state.py, written from the format's documentation, not from the Swift
encoder): the member slots and the health fingerprint are worked out here from the suite's config
(named pools in name order, members in config order, each member's health-check URL), so a
backend that numbered members differently, or hashed the pools differently, refuses every file
and fails the cases that need a member down.

For backends that pick a state file up on their own (the sidecar, nginx, the Lua binding), the
harness adds a probe to the compiled config: a pool of PROBE_MEMBERS (numbered among the suite's
pools by its name, like any pool) and a first route, PROBE_PATH, that redirects to it. Each usable state the harness writes also marks a different, non-empty subset
of the probe members down (a generation counter in binary); unusable files and "no file" mark
none. A backend has taken a state once the probe request's explanation (`skipped`) lists exactly
that subset as down — or, for the sidecar behind a proxy, once /readyz reports the state's
written-at time (or no state).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .suite import REPO, HealthSpec, SuiteError

PROBE_POOL = "conformance-health-probe"
PROBE_ROUTE = "conformance-health-probe"
PROBE_PATH = "/.conformance/health-probe"
PROBE_MEMBERS = [f"https://probe-{i}.conformance.invalid" for i in range(4)]
# A usable state's validity: long enough for any group of cases.
STALE_AFTER_MS = 3_600_000
ENCODER = REPO / "Tests" / "Integration" / "health_state.py"

_encoder = None


def encoder():
    """Tests/Integration/health_state.py (needs the `xxhash` package)."""
    global _encoder
    if _encoder is None:
        spec = importlib.util.spec_from_file_location("conformance_health_state", ENCODER)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"{ENCODER} is missing: health state files cannot be written")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module          # (dataclasses look their module up there)
        try:
            spec.loader.exec_module(module)
        except ImportError as e:
            del sys.modules[spec.name]
            raise RuntimeError(f"{ENCODER}: {e} (pip install xxhash): health state files cannot be written") from e
        _encoder = module
    return _encoder


# --------------------------------------------------------------------------- the config's members


def with_probe(config: dict) -> dict:
    """A copy of `config` with the health probe's pool and (first) route."""
    out = copy.deepcopy(config)
    pools = dict(out.get("pools") or {})
    if PROBE_POOL in pools:
        raise SuiteError(f"the config already has a pool named {PROBE_POOL}")
    pools[PROBE_POOL] = {"health": {"path": "/"},
                         "members": [{"url": url, "priority": i} for i, url in enumerate(PROBE_MEMBERS)]}
    out["pools"] = pools
    out["routes"] = [{"name": PROBE_ROUTE, "path": PROBE_PATH, "methods": ["GET"],
                      "redirect": {"to": {"pool": PROBE_POOL}}}] + list(out.get("routes") or [])
    return out


def check_layout(config: dict, where: str) -> None:
    """A suite whose cases name health states must name every target by pool: a target written as
    one URL is a pool of its own whose slot the compiler numbers after the named pools in an order
    the harness does not reproduce."""
    singles = []

    def target(value, place):
        if isinstance(value, str) and value:
            singles.append(f"{place}: {value}")

    for i, provider in enumerate(config.get("providers") or []):
        for key in ("registry", "artifacts"):
            target(provider.get(key), f"providers[{i}].{key}")
        for region, targets in (provider.get("regions") or {}).items():
            for key in ("registry", "artifacts"):
                target((targets or {}).get(key), f"providers[{i}].regions.{region}.{key}")
        if provider.get("regionTable"):
            singles.append(f"providers[{i}].regionTable")
    for i, route in enumerate(config.get("routes") or []):
        to = (route.get("redirect") or {}).get("to")
        if to not in ("registry", "artifacts"):
            target(to, f"routes[{i}].redirect.to")
    for key in ("registry", "artifacts"):
        target((config.get("defaults") or {}).get(key), f"defaults.{key}")
    sources = [(f"sources[{i}]", s) for i, s in enumerate(config.get("sources") or [])]
    for i, provider in enumerate(config.get("providers") or []):
        sources += [(f"providers[{i}].sources[{j}]", s) for j, s in enumerate(provider.get("sources") or [])]
    for place, source in sources:
        if (source or {}).get("format") == "k8s-asns":
            singles.append(f"{place} (its redirectsTo hosts)")
    if singles:
        raise SuiteError(f"{where}: the cases name health states, so every target must be a pool "
                         f"({{pool: NAME}}); single-URL targets: {'; '.join(singles)}")


def check_url(member_url: str, check: dict | None) -> str | None:
    """The URL a member's health check probes (PoolCompiler.healthCheck): the member's URL (one
    trailing '/' dropped) + the check's path, or the path itself when it is a URL."""
    if check is None:
        return None
    path = str(check.get("path", "/"))
    if not path.startswith("/"):
        return path if "://" in path else "https://" + path
    return (member_url[:-1] if member_url.endswith("/") else member_url) + path


def layout(config: dict) -> list[tuple[str, str | None]]:
    """Every member in slot order: (URL, its health-check URL or None). Named pools in name order
    (code-point order), members in config order; a member's `health` replaces its pool's (false:
    no check)."""
    out = []
    pools = config.get("pools") or {}
    for name in sorted(pools):
        pool = pools[name] or {}
        for member in pool.get("members") or []:
            url = str(member["url"])
            if "://" not in url:
                url = "https://" + url
            own = member.get("health")
            if own is False:
                check = None
            elif isinstance(own, dict):
                check = own
            else:
                check = pool.get("health")
            out.append((url, check_url(url, check)))
    return out


# --------------------------------------------------------------------------- the files


@dataclass
class Prepared:
    """A state file about to be written (data None: no file), and how its uptake shows."""

    spec: HealthSpec
    data: bytes | None
    usable: bool                      # the backend must use it (else: decide as if every member were up)
    written_ms: int = 0               # its written-at time (usable states)
    probe_down: frozenset[str] = frozenset()   # the probe members it marks down (usable states)

    def describe(self) -> str:
        return self.spec.describe()


class HealthFiles:
    """The state files of one suite: its config's slots and fingerprint, one generation per
    usable state written."""

    def __init__(self, compiled_config: dict):
        self.h = encoder()
        self.members = layout(compiled_config)
        self.fingerprint = self.h.fingerprint_of(self.members)
        self.generation = 0
        self.last_ms = 0

    def _records(self, down: set[str]):
        h = self.h
        records = []
        for url, check in self.members:
            if url in down:
                records.append(h.Record(h.DOWN, h.FAIL_CONNECT, 0, 0, h.now_ms() - 5000, "connect: connection refused"))
            else:
                records.append(h.Record(h.UP if check is not None else h.UNCHECKED))
        return records

    def prepare(self, spec: HealthSpec) -> Prepared:
        h = self.h
        if spec.kind == "none":
            return Prepared(spec, None, usable=False)
        everything = {url for url, _ in self.members}
        if spec.kind == "file":
            # Every member down: a backend that used the file would pass every request.
            records = self._records(everything)
            if spec.file == "stale":
                data = h.encode(records, written_ms=h.now_ms() - 3_600_000, stale_after_ms=10_000,
                                fingerprint_value=self.fingerprint)
            elif spec.file == "other":
                data = h.encode(records, fingerprint_value=self.fingerprint ^ 0x5A5A_5A5A_5A5A_5A5A,
                                stale_after_ms=STALE_AFTER_MS)
            else:  # corrupt: one byte of the first record flipped (checksum mismatch)
                data = bytearray(h.encode(records, fingerprint_value=self.fingerprint, stale_after_ms=STALE_AFTER_MS))
                data[41] ^= 0xFF
                data = bytes(data)
            return Prepared(spec, data, usable=False)
        self.generation = self.generation % 15 + 1
        probe = frozenset(url for i, url in enumerate(PROBE_MEMBERS) if self.generation >> i & 1)
        written = max(h.now_ms(), self.last_ms + 1)
        self.last_ms = written
        data = h.encode(self._records(set(spec.down) | probe), written_ms=written, stale_after_ms=STALE_AFTER_MS,
                        fingerprint_value=self.fingerprint)
        return Prepared(spec, data, usable=True, written_ms=written, probe_down=probe)


def write(path: Path, prepared: Prepared) -> None:
    """Replaces the state file at `path` atomically (write, then rename), or removes it."""
    if prepared.data is None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(prepared.data)
        f.flush()
        os.fsync(f.fileno())
    tmp.chmod(0o644)
    os.replace(tmp, path)


def probe_down(skipped: str) -> frozenset[str]:
    """The probe members an explanation's `skipped` lists as down."""
    out = set()
    for token in (skipped or "").split():
        url, _, reason = token.rpartition(":")
        url = url.split("(", 1)[0]
        if reason == "down" and url in PROBE_MEMBERS:
            out.add(url)
    return frozenset(out)


class HealthNotTaken(Exception):
    """A backend did not take a health state within the bounded wait (or took the wrong one)."""


def wait_until_taken(check, prepared: Prepared, timeout: float, what: str) -> None:
    """Polls `check()` (→ (taken, what it saw)) every 50 ms until it says taken, at most `timeout` s."""
    deadline = time.monotonic() + timeout
    seen = ""
    while True:
        try:
            taken, seen = check()
        except OSError as e:
            taken, seen = False, f"{type(e).__name__}: {e}"
        if taken:
            return
        if time.monotonic() > deadline:
            raise HealthNotTaken(f"{what} did not take the health state ({prepared.describe()}) within {timeout:.0f} s; "
                                 f"last seen: {seen}")
        time.sleep(0.05)
