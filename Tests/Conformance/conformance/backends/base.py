"""The backend protocol and shared plumbing (wire encoding, explanations, the source-address shim)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from testkit.http import WireError, WireRequest, WireResponse, send
from testkit.origin import ORIGIN_HEADER

from ..check import Observation
from ..health import PROBE_PATH, HealthNotTaken, Prepared, probe_down, wait_until_taken
from ..suite import Request, Suite

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@dataclass
class Context:
    """What a backend session gets: the suite, its compiled snapshot and a private directory."""

    suite: Suite
    snapshot: Path
    workdir: Path
    timeout: float = 10.0
    # Where the harness writes the health state file the backend decides with (suites whose cases
    # name health states; None otherwise). It need not exist when the backend starts.
    health_file: Path | None = None


@dataclass
class Throughput:
    requests_per_second: float
    requests: int
    seconds: float
    method: str                 # how it was measured


class Backend:
    """A way of deploying the decision. Subclasses set the class attributes and implement
    start/send/stop; `register` (backends/__init__.py) makes them selectable by name."""

    name = "?"
    title = "?"
    traits: frozenset[str] = frozenset()
    profile = "decision"
    options: dict = {}

    def __init__(self, **settings):
        self.settings = settings
        self.options = dict(type(self).options)
        self.ctx: Context | None = None

    # ------------------------------------------------------------------ lifecycle

    def missing(self) -> list[str]:
        """Missing prerequisites (empty when the backend can run)."""
        return []

    def start(self, ctx: Context) -> None:
        self.ctx = ctx

    def stop(self) -> None:
        pass

    def problems(self) -> list[str]:
        """Anything wrong seen in the backend's processes (crashes, alerts), checked at stop."""
        return []

    # ------------------------------------------------------------------ health states

    def health_unsupported(self) -> str | None:
        """None when the backend can be brought to a health state (`take_health`); otherwise why
        not: the cases that name a health state are then n/a."""
        return f"the harness cannot give the {self.name} backend a health state"

    def take_health(self, prepared: Prepared) -> None:
        """The harness has just written (or removed) `ctx.health_file`: make the decisions use it,
        returning once they do (raise health.HealthNotTaken after a bounded wait, or when the
        backend accepted an unusable file or refused a usable one)."""
        raise HealthNotTaken(self.health_unsupported() or "take_health is not implemented")

    # ------------------------------------------------------------------ requests

    def applicable(self, request: Request, suite: Suite) -> str | None:
        """None when the backend can carry `request`; otherwise why not (the case is n/a)."""
        return None

    def send(self, request: Request) -> Observation:
        raise NotImplementedError

    def bench(self, request: Request, seconds: float) -> Throughput | None:
        return None


def need_file(path: Path, hint: str) -> list[str]:
    return [] if path.exists() else [f"{path} is missing ({hint})"]


# --------------------------------------------------------------------------- HTTP backends


def client_headers(request: Request) -> list[tuple[bytes, bytes]]:
    """The forwarding headers of a request: `client` becomes X-Forwarded-For from the trusted
    peer; otherwise the case's own X-Forwarded-For headers and other headers."""
    out: list[tuple[bytes, bytes]] = []
    if request.client is not None:
        out.append((b"X-Forwarded-For", request.client))
    for value in request.xff:
        out.append((b"X-Forwarded-For", value))
    out += request.headers
    return out


def source_of(request: Request, suite: Suite) -> str:
    return request.peer or suite.peer


def parse_explain(text: str | None) -> dict[str, str] | None:
    """`key=value key=value …` (sidecar X-Redirector-Explain, our nginx debug header) → dict.
    `skipped` and `check` (a presence check) may come once with their items separated by spaces
    or once per item."""
    if text is None:
        return None
    out: dict[str, str] = {}
    key = None
    for token in text.split(" "):
        m = re.match(r"^([a-z_]+)=(.*)$", token)
        if m and m.group(1) in ("action", "status", "location", "provider", "region", "prefix", "asn", "source",
                                 "route", "target", "client", "header", "pool", "member", "step", "skipped", "check"):
            key = m.group(1)
            if key == "header":
                continue
            if key in ("skipped", "check") and out.get(key):
                out[key] += " " + m.group(2)     # the sidecar writes one skipped= per member, one check= per check
            else:
                out[key] = m.group(2)
        elif key and key != "header":
            out[key] += " " + token
    return out


class HTTPBackend(Backend):
    """A backend reached over HTTP on loopback: subclasses build the wire request and start servers."""

    traits = frozenset({"wire"})
    port = 0
    port6: int | None = None          # the port listening on [::1], when the backend does
    listens_ipv6 = False              # whether it will listen on [::1] (peers like ::1 are possible)
    explain_header: str | None = None

    def applicable(self, request: Request, suite: Suite) -> str | None:
        source = source_of(request, suite)
        if ":" in source and not self.listens_ipv6:
            return "the backend listens on 127.0.0.1 only (the case needs an IPv6 peer)"
        return None

    def wire_request(self, request: Request) -> WireRequest:
        """The request as the backend receives it (default: the client's request itself)."""
        assert self.ctx is not None
        headers = [(b"Host", request.host)] + client_headers(request)
        return WireRequest(request.method, request.target, headers, source_of(request, self.ctx.suite))

    def observe(self, response: WireResponse) -> Observation:
        obs = Observation(status=response.status, location=response.header("Location"),
                          headers=response.headers, seconds=response.seconds)
        if self.profile in ("origin", "auth-proxy", "generic"):
            obs.origin = response.header(ORIGIN_HEADER) is not None
        if self.explain_header:
            obs.explain = parse_explain(response.header(self.explain_header))
        return obs

    def health_unsupported(self) -> str | None:
        if self.explain_header is None:
            return f"the {self.name} backend does not explain its decisions, so the harness cannot see it take a health state"
        return None

    def take_health(self, prepared: Prepared) -> None:
        """Polls the harness's probe route until its explanation lists as down exactly the probe
        members the state marks down (none for an unusable file or no file)."""
        assert self.ctx is not None
        probe = Request(method=b"GET", target=PROBE_PATH.encode())

        def check():
            obs = self.send(probe)
            if obs.error or obs.explain is None:
                return False, obs.error or f"no {self.explain_header} on the probe's answer ({obs.describe()})"
            seen = probe_down(obs.explain.get("skipped", ""))
            return seen == prepared.probe_down, f"probe members down: {sorted(seen)}, want {sorted(prepared.probe_down)}"

        wait_until_taken(check, prepared, 15.0, self.name)

    def send(self, request: Request) -> Observation:
        assert self.ctx is not None
        wire = self.wire_request(request)
        port = self.port6 if ":" in wire.source and self.port6 else self.port
        try:
            response = send(port, wire, timeout=self.ctx.timeout)
        except WireError as e:
            return Observation(error=str(e), refused=e.refused)
        return self.observe(response)

    def bench(self, request: Request, seconds: float) -> Throughput | None:
        """wrk against the backend with the wire form of `request`, from the request's peer."""
        if not shutil.which("wrk") or seconds <= 0 or self.ctx is None:
            return None
        wire = self.wire_request(request)
        if ":" in wire.source or any(b in wire.target for b in b" \r\n") or wire.method != b"GET":
            return None
        env = dict(os.environ)
        note = ""
        if wire.source != "127.0.0.1":
            shim = bind_shim(self.ctx.workdir)
            if shim is None:
                note = ", from 127.0.0.1 (no C compiler for the source-address shim)"
            else:
                env["LD_PRELOAD"] = str(shim)
                env["CONFORMANCE_SOURCE"] = wire.source
        cmd = ["wrk", "-t1", "-c8", f"-d{max(1, int(round(seconds)))}s", "--timeout", "2s"]
        for name, value in wire.headers:
            if name.lower() != b"host":
                cmd += ["-H", f"{name.decode('latin-1')}: {value.decode('latin-1')}"]
        cmd.append(f"http://127.0.0.1:{self.port}{wire.target.decode('latin-1')}")
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, env=env).stdout
        except subprocess.TimeoutExpired:
            return None
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        n = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        if not m or not n:
            return None
        elapsed = float(n.group(2)) / (1000 if n.group(3) == "ms" else 1)
        method = f"wrk -t1 -c8 keep-alive, GET {request.target.decode('latin-1')}{note}"
        if non2xx:
            method += f" ({non2xx.group(1)} non-2xx/3xx answers)"
        if errors:
            method += f" (socket errors: {errors.group(1).strip()})"
        return Throughput(float(m.group(1)), int(n.group(1)), elapsed, method)


def bind_shim(directory: Path) -> Path | None:
    """templates/bindsource.c built once into `directory` (None without a C compiler)."""
    target = directory.parent / "bindsource.so"
    if target.exists():
        return target
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        return None
    proc = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(target), str(TEMPLATES / "bindsource.c"),
                           "-ldl"], capture_output=True, text=True, timeout=120)
    return target if proc.returncode == 0 else None

