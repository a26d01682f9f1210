"""Library backends: the Swift core in-process (redirector-conformance-driver) and the C ABI
through dlopen (ctypes) of libredirector.so. Both answer decisions, not HTTP responses."""

from __future__ import annotations

import ctypes
import subprocess
import time

from testkit import abi, paths

from ..check import Observation
from ..suite import Request, Suite
from .base import Backend, Context, Throughput, need_file


def _hex(data: bytes) -> str:
    return data.hex()


class CoreBackend(Backend):
    """RedirectorCore called directly: ClientAddressResolver (the snapshot's trustedProxies) +
    Snapshot.decide, in a `redirector-conformance-driver` process fed over a pipe (one hex-encoded
    request per line). The latency is the time of `decide` alone, measured inside the process."""

    name = "core"
    title = "Swift core (in-process)"
    traits = frozenset({"library", "core", "resolves"})
    profile = "decision"

    def missing(self):
        return need_file(paths.CONFORMANCE_DRIVER, "swift build -c release")

    def start(self, ctx: Context):
        super().start(ctx)
        self.proc = subprocess.Popen([str(paths.CONFORMANCE_DRIVER), "--snapshot", str(ctx.snapshot)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.count = 0

    def _ask(self, line: str) -> str:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"{paths.CONFORMANCE_DRIVER.name} exited {self.proc.poll()}: {err[-2000:]}")
        return answer.rstrip("\n")

    def send(self, request: Request) -> Observation:
        assert self.ctx is not None
        self.count += 1
        tokens = [f"id={self.count}", f"method={_hex(request.method)}", f"target={_hex(request.target)}"]
        if request.client is not None:
            tokens.append(f"client={_hex(request.client)}")
        else:
            tokens.append(f"peer={_hex((request.peer or self.ctx.suite.peer).encode())}")
            tokens += [f"xff={_hex(v)}" for v in request.xff]
            for name, value in request.headers:
                key = {b"x-forwarded-for": "xff", b"x-real-ip": "realip",
                       b"x-envoy-external-address": "envoy"}.get(name.lower())
                if key:
                    tokens.append(f"{key}={_hex(value)}")
        try:
            answer = self._ask(" ".join(tokens))
        except (RuntimeError, OSError) as e:
            return Observation(error=str(e))
        fields: dict[str, str] = {}
        headers: list[tuple[str, str]] = []
        for token in answer.split(" "):
            key, _, value = token.partition("=")
            if key == "header":
                name, _, val = bytes.fromhex(value).decode("utf-8", "replace").partition(": ")
                headers.append((name, val))
            elif key in ("location", "provider", "region", "prefix", "route", "client", "target"):
                fields[key] = bytes.fromhex(value).decode("latin-1")
            else:
                fields[key] = value
        if "action" not in fields:
            return Observation(error=f"unexpected answer: {answer[:200]}")
        action = fields["action"]
        return Observation(
            status=int(fields.get("status", "0")), action=action,
            location=fields.get("location") if action == "redirect" else None, headers=headers,
            explain={"action": action, "provider": fields.get("provider", ""), "region": fields.get("region", ""),
                     "prefix": fields.get("prefix", ""), "asn": fields.get("asn", ""),
                     "route": fields.get("route", ""), "client": fields.get("client", "")},
            seconds=int(fields.get("ns", "0")) / 1e9)

    def bench(self, request: Request, seconds: float) -> Throughput | None:
        if seconds <= 0:
            return None
        # Every request sent so far, decided in rounds for about `seconds`.
        rounds = 1
        while True:
            answer = self._ask(f"bench {rounds}")
            fields = dict(t.partition("=")[::2] for t in answer.split(" ")[1:])
            count, ns = int(fields["count"]), int(fields["ns"])
            if ns >= seconds * 1e9 * 0.5 or rounds > 10_000_000 or count == 0:
                break
            rounds *= max(2, min(100, int(seconds * 1e9 / max(ns, 1))))
        if count == 0:
            return None
        return Throughput(count / (ns / 1e9), count, ns / 1e9,
                          f"Snapshot.decide in a loop over the suite's {self.count} requests (one thread)")

    def stop(self):
        proc = getattr(self, "proc", None)
        if proc and proc.poll() is None:
            proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


# --------------------------------------------------------------------------- C ABI


class ABIBackend(Backend):
    """libredirector.so through dlopen (ctypes, testkit.abi), as a C host uses it: rdr_open,
    rdr_decide with the client address text into a small buffer (so RDR_ENOSPC is exercised),
    rdr_format_prefix, rdr_route_header. The ABI takes an already resolved client, so requests
    whose client comes from forwarding headers are not for it."""

    name = "abi"
    title = "C ABI (dlopen libredirector.so)"
    traits = frozenset({"library", "abi"})
    profile = "decision"

    def missing(self):
        return need_file(paths.LIBRARY, "scripts/build-library.sh")

    def start(self, ctx: Context):
        super().start(ctx)
        self.table = abi.Library().open(ctx.snapshot)
        self.sent: list[tuple] = []

    def applicable(self, request: Request, suite: Suite) -> str | None:
        if request.client is None and request.forwards:
            return "the C ABI takes a resolved client address; forwarding headers are the host's business"
        return None

    def send(self, request: Request) -> Observation:
        assert self.ctx is not None
        client = request.client if request.client is not None else (request.peer or self.ctx.suite.peer).encode()
        decided = self.table.decide(client, request.method, request.target, request.host)
        self.sent.append((client, request))
        if decided.rc != abi.RDR_OK:
            return Observation(error=f"rdr_decide returned {decided.rc}")
        out = decided.decision
        headers = self.table.route_headers(out.route) if out.action == abi.RDR_RESPOND and out.route >= 0 else []

        def text(p):
            return (p or b"").decode("utf-8", "replace")

        return Observation(
            status=out.status, action=decided.action,
            location=decided.location.decode("latin-1") if decided.location is not None else None, headers=headers,
            explain={"action": decided.action, "provider": text(out.provider_name), "region": text(out.region),
                     "prefix": self.table.format_prefix(out), "asn": str(out.asn) if out.asn else "",
                     "route": text(out.route_name)},
            seconds=decided.ns / 1e9)

    def bench(self, request: Request, seconds: float) -> Throughput | None:
        if seconds <= 0 or not self.sent:
            return None
        prepared = [abi.request(client, req.method, req.target, req.host) for client, req in self.sent]
        out = abi.Decision()
        buf = ctypes.create_string_buffer(65536)
        decide, table, n = self.table.c.rdr_decide, self.table.handle, 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            for r in prepared:
                decide(table, ctypes.byref(r), ctypes.byref(out), buf, 65536)
            n += len(prepared)
        elapsed = time.perf_counter() - start
        return Throughput(n / elapsed, n, elapsed,
                          f"rdr_decide via ctypes over the suite's {len(prepared)} requests (ctypes call overhead included)")

    def stop(self):
        table = getattr(self, "table", None)
        if table:
            table.close()
