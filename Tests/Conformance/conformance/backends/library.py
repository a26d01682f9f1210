"""Library backends: the Swift core in-process (`redirector conformance core`) and the C ABI
through dlopen (ctypes) of libredirector.so. Both answer decisions, not HTTP responses."""

from __future__ import annotations

import ctypes
import subprocess
import time

from ..check import Observation
from ..suite import Request, Suite
from .base import CLI, LIBRARY, Backend, Context, Throughput, need_file


def _hex(data: bytes) -> str:
    return data.hex()


class CoreBackend(Backend):
    """RedirectorCore called directly: ClientAddressResolver (the snapshot's trustedProxies) +
    Snapshot.decide, in a `redirector conformance core` process fed over a pipe. The latency is
    the time of `decide` alone, measured inside the process."""

    name = "core"
    title = "Swift core (in-process)"
    traits = frozenset({"library", "core", "resolves"})
    profile = "decision"

    def missing(self):
        return need_file(CLI, "swift build -c release")

    def start(self, ctx: Context):
        super().start(ctx)
        self.proc = subprocess.Popen([str(CLI), "conformance", "core", "--snapshot", str(ctx.snapshot)],
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
            raise RuntimeError(f"`redirector conformance core` exited {self.proc.poll()}: {err[-2000:]}")
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


class RdrRequest(ctypes.Structure):
    _fields_ = [("client", ctypes.c_char_p), ("client_len", ctypes.c_size_t),
                ("method", ctypes.c_char_p), ("method_len", ctypes.c_size_t),
                ("host", ctypes.c_char_p), ("host_len", ctypes.c_size_t),
                ("path", ctypes.c_char_p), ("path_len", ctypes.c_size_t)]


class RdrDecision(ctypes.Structure):
    _fields_ = [("action", ctypes.c_int32), ("status", ctypes.c_int32), ("location_len", ctypes.c_size_t),
                ("provider", ctypes.c_int32), ("route", ctypes.c_int32), ("asn", ctypes.c_uint32),
                ("prefix_len", ctypes.c_int32), ("family", ctypes.c_int32), ("prefix", ctypes.c_uint8 * 16),
                ("provider_name", ctypes.c_char_p), ("region", ctypes.c_char_p),
                ("route_name", ctypes.c_char_p), ("target_host", ctypes.c_char_p)]


ACTIONS = {0: "pass", 1: "redirect", 2: "respond"}


class ABIBackend(Backend):
    """libredirector.so through dlopen (ctypes), as a C host uses it: rdr_open, rdr_decide with
    the client address text, rdr_format_prefix, rdr_route_header. The ABI takes an already
    resolved client, so requests whose client comes from forwarding headers are not for it."""

    name = "abi"
    title = "C ABI (dlopen libredirector.so)"
    traits = frozenset({"library", "abi"})
    profile = "decision"

    def missing(self):
        return need_file(LIBRARY, "scripts/build-library.sh")

    def start(self, ctx: Context):
        super().start(ctx)
        lib = ctypes.CDLL(str(LIBRARY))
        lib.rdr_abi_version.restype = ctypes.c_uint32
        lib.rdr_open.restype = ctypes.c_void_p
        lib.rdr_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.rdr_close.argtypes = [ctypes.c_void_p]
        lib.rdr_decide.restype = ctypes.c_int
        lib.rdr_decide.argtypes = [ctypes.c_void_p, ctypes.POINTER(RdrRequest), ctypes.POINTER(RdrDecision),
                                   ctypes.c_char_p, ctypes.c_size_t]
        lib.rdr_format_prefix.restype = ctypes.c_int
        lib.rdr_format_prefix.argtypes = [ctypes.POINTER(RdrDecision), ctypes.c_char_p, ctypes.c_size_t]
        lib.rdr_route_header_count.restype = ctypes.c_int32
        lib.rdr_route_header_count.argtypes = [ctypes.c_void_p, ctypes.c_int32]
        lib.rdr_route_header.restype = ctypes.c_int
        lib.rdr_route_header.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32,
                                         ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p)]
        if lib.rdr_abi_version() != 1:
            raise RuntimeError(f"{LIBRARY}: ABI version {lib.rdr_abi_version()}, the harness speaks 1")
        err = ctypes.create_string_buffer(512)
        table = lib.rdr_open(str(ctx.snapshot).encode(), err, len(err))
        if not table:
            raise RuntimeError(f"rdr_open failed: {err.value.decode(errors='replace')}")
        self.lib, self.table = lib, table
        self.buffer = ctypes.create_string_buffer(256)   # small on purpose: exercises RDR_ENOSPC
        self.sent: list[tuple] = []

    def applicable(self, request: Request, suite: Suite) -> str | None:
        if request.client is None and request.forwards:
            return "the C ABI takes a resolved client address; forwarding headers are the host's business"
        return None

    def _decide(self, client: bytes, request: Request):
        req = RdrRequest(client, len(client), request.method, len(request.method), request.host,
                         len(request.host), request.target, len(request.target))
        out = RdrDecision()
        start = time.perf_counter_ns()
        rc = self.lib.rdr_decide(self.table, ctypes.byref(req), ctypes.byref(out), self.buffer, len(self.buffer))
        elapsed = time.perf_counter_ns() - start
        if rc == -1:
            self.buffer = ctypes.create_string_buffer(out.location_len + 1)
            start = time.perf_counter_ns()
            rc = self.lib.rdr_decide(self.table, ctypes.byref(req), ctypes.byref(out), self.buffer, len(self.buffer))
            elapsed = time.perf_counter_ns() - start
        return rc, out, elapsed, req

    def send(self, request: Request) -> Observation:
        assert self.ctx is not None
        client = request.client if request.client is not None else (request.peer or self.ctx.suite.peer).encode()
        rc, out, elapsed, req = self._decide(client, request)
        self.sent.append((client, request))
        if rc != 0:
            return Observation(error=f"rdr_decide returned {rc}")
        action = ACTIONS.get(out.action, f"?{out.action}")
        location = None
        if out.action == 1:
            location = ctypes.string_at(self.buffer, out.location_len).decode("latin-1")
        prefix = ctypes.create_string_buffer(64)
        n = self.lib.rdr_format_prefix(ctypes.byref(out), prefix, len(prefix))
        headers = []
        if out.action == 2 and out.route >= 0:
            for i in range(self.lib.rdr_route_header_count(self.table, out.route)):
                name, value = ctypes.c_char_p(), ctypes.c_char_p()
                if self.lib.rdr_route_header(self.table, out.route, i, ctypes.byref(name), ctypes.byref(value)) == 0:
                    headers.append((name.value.decode(), value.value.decode()))

        def text(p):
            return (p or b"").decode("utf-8", "replace")

        return Observation(
            status=out.status, action=action, location=location, headers=headers,
            explain={"action": action, "provider": text(out.provider_name), "region": text(out.region),
                     "prefix": prefix.value.decode() if n > 0 else "", "asn": str(out.asn) if out.asn else "",
                     "route": text(out.route_name)},
            seconds=elapsed / 1e9)

    def bench(self, request: Request, seconds: float) -> Throughput | None:
        if seconds <= 0 or not self.sent:
            return None
        prepared = []
        for client, req in self.sent:
            prepared.append(RdrRequest(client, len(client), req.method, len(req.method), req.host, len(req.host),
                                       req.target, len(req.target)))
        out = RdrDecision()
        buf = ctypes.create_string_buffer(65536)
        decide, table, n = self.lib.rdr_decide, self.table, 0
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
            self.lib.rdr_close(table)
            self.table = None
