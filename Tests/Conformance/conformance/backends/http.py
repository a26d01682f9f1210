"""The generic HTTP backend: any running redirector at a URL (ours or another implementation).

It starts nothing. The client address goes in a configurable header (X-Forwarded-For by
default; e.g. X-Real-IP or a CDN's client header); the request comes from 127.0.0.1. Its trust
configuration is unknown to the harness, so cases that describe peers and forwarding headers
are not for it, and it runs only the suites it is told the target serves.

    redirector conformance run --backends http --http-url http://127.0.0.1:8080 \\
        --http-suite simple --http-client-header X-Real-IP --http-pass-status 200
"""

from __future__ import annotations

from urllib.parse import urlsplit

from testkit.http import WireError, WireRequest, send

from ..check import Observation
from ..suite import Request, Suite
from .base import Context, HTTPBackend


class GenericHTTPBackend(HTTPBackend):
    name = "http"
    title = "generic HTTP redirector (by URL)"
    traits = frozenset({"wire", "generic"})
    profile = "generic"

    def __init__(self, url: str | None = None, client_header: str = "X-Forwarded-For", pass_status: int | None = None,
                 origin_header: str | None = None, suites: list[str] | None = None, explain_header: str | None = None,
                 **settings):
        super().__init__(**settings)
        self.url = url
        self.client_header = client_header
        self.options = {"pass_status": pass_status, "origin_header": origin_header}
        self.suites = suites or []
        self.explain_header = explain_header
        self.origin_header = origin_header

    def missing(self):
        if not self.url:
            return ["no --http-url given (the URL of a running redirector)"]
        parts = urlsplit(self.url)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            return [f"--http-url {self.url}: only http:// on loopback (127.0.0.1, ::1) is allowed"]
        try:
            send(parts.port or 80, WireRequest(b"GET", b"/", [(b"Host", b"mirror.test")]), timeout=3,
                 host=parts.hostname if parts.hostname != "localhost" else "127.0.0.1")
        except WireError as e:
            return [f"{self.url} does not answer: {e}"]
        return []

    def start(self, ctx: Context):
        super().start(ctx)
        parts = urlsplit(self.url or "")
        self.host = parts.hostname if parts.hostname != "localhost" else "127.0.0.1"
        self.port = parts.port or 80
        self.base = (parts.path or "").rstrip("/").encode()

    def applicable(self, request: Request, suite: Suite) -> str | None:
        if self.suites and suite.name not in self.suites:
            return f"the target at {self.url} serves suites {', '.join(self.suites)}"
        if request.client is None and (request.forwards or request.peer):
            return "the target's trusted proxies are unknown: peer/forwarding cases need a backend the harness configures"
        return None

    def wire_request(self, request: Request) -> WireRequest:
        headers = [(b"Host", request.host)]
        if request.client is not None:
            headers.append((self.client_header.encode(), request.client))
        headers += request.headers
        return WireRequest(request.method, self.base + request.target, headers, "127.0.0.1")

    def observe(self, response):
        obs = super().observe(response)
        obs.origin = response.header(self.origin_header) is not None if self.origin_header else None
        return obs

    def send(self, request: Request) -> Observation:
        assert self.ctx is not None
        try:
            response = send(self.port, self.wire_request(request), timeout=self.ctx.timeout, host=self.host)
        except WireError as e:
            return Observation(error=str(e), refused=e.refused)
        return self.observe(response)
