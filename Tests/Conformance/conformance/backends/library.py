"""Library backends: the Swift core in-process (redirector-conformance-driver) and the C ABI
through dlopen (ctypes) of libredirector.so. Both answer decisions, not HTTP responses."""

from __future__ import annotations

import ctypes
import subprocess
import time

from testkit import abi, paths

from .. import presence
from ..check import Observation
from ..health import HealthNotTaken, Prepared
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
    traits = frozenset({"library", "core", "resolves", "route-headers"})
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
        """One decision; for a suite with mirrors, the rounds of its presence checks (the harness
        is the host: conformance.presence.verified)."""
        assert self.ctx is not None
        if self.ctx.suite.mirrors is None:
            return self.decide(request, [], False)[0]
        return presence.verified(lambda missing, exhausted: self.decide(request, missing, exhausted),
                                 presence.Settings.of(self.ctx.suite.config))

    def decide(self, request: Request, missing: list[int], exhausted: bool) -> tuple[Observation, bool, str | None, int]:
        """The driver's decision of `request` with `missing` members excluded: (observation,
        whether it needs its presence check, Location, member)."""
        assert self.ctx is not None
        self.count += 1
        tokens = [f"id={self.count}", f"method={_hex(request.method)}", f"target={_hex(request.target)}"]
        if missing:
            tokens.append(f"missing={_hex(','.join(map(str, missing)).encode())}")
        if exhausted:
            tokens.append(f"exhausted={_hex(b'1')}")
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
        # Every header, for the routes' header conditions (the core reads the names they use).
        tokens += [f"header={_hex(name)}:{_hex(value)}" for name, value in request.headers]
        try:
            answer = self._ask(" ".join(tokens))
        except (RuntimeError, OSError) as e:
            return Observation(error=str(e)), False, None, -1
        fields: dict[str, str] = {}
        headers: list[tuple[str, str]] = []
        for token in answer.split(" "):
            key, _, value = token.partition("=")
            if key == "header":
                name, _, val = bytes.fromhex(value).decode("utf-8", "replace").partition(": ")
                headers.append((name, val))
            elif key in ("location", "provider", "region", "prefix", "route", "client", "target", "pool", "skipped"):
                fields[key] = bytes.fromhex(value).decode("latin-1")
            else:
                fields[key] = value
        if "action" not in fields:
            return Observation(error=f"unexpected answer: {answer[:200]}"), False, None, -1
        action = fields["action"]
        location = fields.get("location") if action == "redirect" else None
        observation = Observation(
            status=int(fields.get("status", "0")), action=action,
            location=location, headers=headers,
            explain={"action": action, "provider": fields.get("provider", ""), "region": fields.get("region", ""),
                     "prefix": fields.get("prefix", ""), "asn": fields.get("asn", ""),
                     "route": fields.get("route", ""), "client": fields.get("client", ""),
                     "pool": fields.get("pool", ""), "step": fields.get("step", ""),
                     "skipped": fields.get("skipped", ""), "target": fields.get("target", "")},
            seconds=int(fields.get("ns", "0")) / 1e9)
        return observation, fields.get("verify") == "1", location, int(fields.get("member", "-1"))

    def health_unsupported(self) -> str | None:
        return None

    def take_health(self, prepared: Prepared) -> None:
        """`health file=PATH` (the driver decodes it with HealthState.decode and keeps it), or
        `health` (no state) when there is no file."""
        assert self.ctx is not None and self.ctx.health_file is not None
        line = "health" if prepared.data is None else f"health file={_hex(str(self.ctx.health_file).encode())}"
        answer = self._ask(line)
        fields = dict(t.partition("=")[::2] for t in answer.split(" ")[1:])
        state = fields.get("state", "")
        reason = bytes.fromhex(fields.get("reason", "")).decode("utf-8", "replace") if "reason" in fields else ""
        self.health_note = f"{state} {fields.get('kind', '')} {reason}".strip()
        if not answer.startswith("health "):
            raise HealthNotTaken(f"unexpected answer to {line!r}: {answer[:300]}")
        if prepared.usable and state != "loaded":
            raise HealthNotTaken(f"the core refused the state file ({prepared.describe()}): {self.health_note}")
        if not prepared.usable and state == "loaded":
            raise HealthNotTaken(f"the core accepted an unusable state file ({prepared.describe()})")

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
    traits = frozenset({"library", "abi", "route-headers"})
    profile = "decision"

    def missing(self):
        return need_file(paths.LIBRARY, "scripts/build-library.sh")

    def start(self, ctx: Context):
        super().start(ctx)
        self.table = abi.Library().open(ctx.snapshot)
        self.sent: list[tuple] = []
        # rdr_health of the suite's health states (rdr_health_new); passed while `use_health`.
        self.health = self.table.health() if ctx.health_file is not None else None
        self.use_health = False

    def applicable(self, request: Request, suite: Suite) -> str | None:
        if request.client is None and request.forwards:
            return "the C ABI takes a resolved client address; forwarding headers are the host's business"
        return None

    def send(self, request: Request) -> Observation:
        """rdr_decide; for a suite with mirrors, the rounds of its presence checks with
        rdr_request.missing and checks_exhausted (the harness is the host: conformance.presence)."""
        assert self.ctx is not None
        client = request.client if request.client is not None else (request.peer or self.ctx.suite.peer).encode()
        self.sent.append((client, request))
        if self.ctx.suite.mirrors is None:
            return self.decide(client, request, [], False)[0]
        return presence.verified(lambda missing, exhausted: self.decide(client, request, missing, exhausted),
                                 presence.Settings.of(self.ctx.suite.config))

    def decide(self, client: bytes, request: Request, missing: list[int],
               exhausted: bool) -> tuple[Observation, bool, str | None, int]:
        """One rdr_decide (and rdr_format_skipped) with `missing` excluded: (observation, whether
        it needs its presence check, Location, member)."""
        health = self.health if self.use_health else None
        headers = list(request.headers) or None
        decided = self.table.decide(client, request.method, request.target, request.host, headers=headers, health=health,
                                    missing=missing, exhausted=exhausted)
        if decided.rc != abi.RDR_OK:
            return Observation(error=f"rdr_decide returned {decided.rc}"), False, None, -1
        out = decided.decision

        def text(p):
            return (p or b"").decode("utf-8", "replace")

        rc, skipped = self.table.format_skipped(client, request.method, request.target, request.host, headers=headers,
                                                health=health, missing=missing, exhausted=exhausted)
        if rc < 0:
            return Observation(error=f"rdr_format_skipped returned {rc}"), False, None, -1
        location = decided.location.decode("latin-1") if decided.location is not None else None
        observation = Observation(
            status=out.status, action=decided.action, location=location,
            headers=self.table.route_headers(out.route) if out.action == abi.RDR_RESPOND and out.route >= 0 else [],
            explain={"action": decided.action, "provider": text(out.provider_name), "region": text(out.region),
                     "prefix": self.table.format_prefix(out), "asn": str(out.asn) if out.asn else "",
                     "route": text(out.route_name), "pool": text(out.pool_name), "step": text(out.step_name),
                     "skipped": skipped, "target": text(out.target_host)},
            seconds=decided.ns / 1e9)
        return observation, bool(out.verify), location, out.member

    def health_unsupported(self) -> str | None:
        return None

    def take_health(self, prepared: Prepared) -> None:
        """rdr_health_load with the file's bytes (a refused file leaves the rdr_health "every
        member up", and decisions keep passing it); no file: decisions pass NULL."""
        assert self.ctx is not None and self.ctx.health_file is not None and self.health is not None
        if prepared.data is None:
            self.use_health = False
            return
        rc, message = self.health.load(self.ctx.health_file.read_bytes())
        self.use_health = True
        self.health_note = message
        if prepared.usable and rc != abi.RDR_OK:
            raise HealthNotTaken(f"rdr_health_load refused the state file ({prepared.describe()}): {rc} {message}")
        if not prepared.usable and rc != abi.RDR_EHEALTH:
            raise HealthNotTaken(f"rdr_health_load returned {rc}, not RDR_EHEALTH, for an unusable state file "
                                 f"({prepared.describe()})")

    def bench(self, request: Request, seconds: float) -> Throughput | None:
        if seconds <= 0 or not self.sent:
            return None
        health = self.health if self.use_health else None
        prepared = [abi.request(client, req.method, req.target, req.host, list(req.headers) or None, health)
                    for client, req in self.sent]
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
        health = getattr(self, "health", None)
        if health:
            health.free()
        table = getattr(self, "table", None)
        if table:
            table.close()
