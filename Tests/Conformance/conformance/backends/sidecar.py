"""The sidecar (`redirector serve`) asked directly in each mode — ext_authz, forward-auth,
auth-request, standalone — with the harness playing the proxy, and behind real proxies: Envoy
(ext_authz HTTP), Caddy (forward_auth), Traefik (ForwardAuth) and nginx (auth_request), rendered
from the shipped examples by testkit.proxies, stopped by PID."""

from __future__ import annotations

import subprocess

from testkit import paths, proxies
from testkit.http import WireRequest, accepts, free_port
from testkit.origin import Origin
from testkit.processes import wait_until
from testkit.sidecar import Sidecar

from ..health import Prepared, wait_until_taken
from ..suite import Request, Suite
from .base import Context, HTTPBackend, client_headers, need_file, source_of

PROXY_HOP = "127.0.0.1/32"        # the proxies' own address toward the sidecar


def start_sidecar(ctx: Context, name: str, listeners: list[str], extra: list[str], trusted: list[str]) -> Sidecar:
    """`redirector serve` with an auto listener (health) plus `listeners`, logging to the workdir;
    with `--health-state` when the suite's cases name health states."""
    log_dir = ctx.workdir / name
    log_dir.mkdir(parents=True, exist_ok=True)
    args = ["--log-level", "error", "--threads", "1"]
    if ctx.health_file is not None:
        args += ["--health-state", str(ctx.health_file)]
    for listener in listeners:
        args += ["--listen", listener]
    return Sidecar(ctx.snapshot, log_dir / "sidecar.log", trusted=trusted, extra_args=args + extra).start()


def serve_missing() -> list[str]:
    """Why `redirector serve` cannot run (empty when it can)."""
    if not paths.CLI.exists():
        return need_file(paths.CLI, "swift build -c release")
    out = subprocess.run([str(paths.CLI), "serve", "--help"], capture_output=True, text=True, timeout=30)
    return [] if out.returncode == 0 else [f"{paths.CLI} has no `serve` subcommand (sidecar not built)"]


class SidecarDirect(HTTPBackend):
    """The sidecar in one mode, on its own listeners (127.0.0.1 and ::1), with --explain. A
    subclass names its `mode`; its name is sidecar-MODE, its profile and a trait the mode."""

    mode = ""
    explain_header = "X-Redirector-Explain"
    listens_ipv6 = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.mode:
            cls.name, cls.profile = f"sidecar-{cls.mode}", cls.mode
            cls.traits = frozenset({"wire", "sidecar", "direct", "resolves", "explain", "ipv6-peer", "route-headers", cls.mode})

    def missing(self):
        return serve_missing()

    def start(self, ctx: Context):
        super().start(ctx)
        self.port = self.port6 = free_port()
        extra = ["--explain"] + self.extra_args()
        self.sidecar = start_sidecar(ctx, self.name, [f"{self.mode}=127.0.0.1:{self.port}",
                                                      f"{self.mode}=[::1]:{self.port}"],
                                     extra, trusted=[])
        # /readyz (on the first listener) turns 200 before the later listeners are bound: wait for ours.
        for host in ("127.0.0.1", "::1"):
            wait_until(lambda host=host: accepts(self.port, host), 20, f"{self.mode} listener on {host}:{self.port}")

    def extra_args(self) -> list[str]:
        return []

    def observe(self, response):
        """X-Redirector-Explain leaves out an empty pool and skipped list, and the step of a
        redirect that did not fail over (primary) or of a decision without a target."""
        obs = super().observe(response)
        if obs.explain is not None:
            obs.explain.setdefault("pool", "")
            obs.explain.setdefault("skipped", "")
            obs.explain.setdefault("step", "primary" if obs.explain.get("action") == "redirect" else "")
        return obs

    def stop(self):
        sidecar = getattr(self, "sidecar", None)
        if sidecar:
            code = sidecar.stop()
            self.exit_code = code

    def problems(self):
        sidecar = getattr(self, "sidecar", None)
        code = getattr(self, "exit_code", 0)
        if sidecar and code not in (0, None, -15):
            return [f"sidecar exited {code}: {sidecar.log_text()[-1000:]}"]
        return []

    def forwarded(self, request: Request) -> list[tuple[bytes, bytes]]:
        return client_headers(request)


class HeaderCarried(SidecarDirect):
    """Modes where the proxy asks with GET `endpoint` and puts the original method, target and host
    in the `carried` headers (in that order), plus `extra` headers of its own."""

    endpoint = b""
    carried: tuple[bytes, bytes, bytes] = (b"", b"", b"")
    extra: tuple[tuple[bytes, bytes], ...] = ()

    def applicable(self, request: Request, suite: Suite) -> str | None:
        if b"\r" in request.target or b"\n" in request.target or b"\r" in request.method or b"\n" in request.method:
            return ("a proxy cannot put CR/LF in a header value; sending it would be the harness injecting "
                    "a header of its own")
        return super().applicable(request, suite)

    def wire_request(self, request: Request) -> WireRequest:
        assert self.ctx is not None
        method, target, host = self.carried
        headers = [(b"Host", b"127.0.0.1"), (method, request.method), (target, request.target), (host, request.host),
                   *self.extra] + self.forwarded(request)
        return WireRequest(b"GET", self.endpoint, headers, source_of(request, self.ctx.suite))


class SidecarExtAuthz(SidecarDirect):
    mode = "ext-authz"
    title = "sidecar, ext_authz HTTP (direct)"

    def applicable(self, request: Request, suite: Suite) -> str | None:
        if not request.target.startswith(b"/"):
            return ("Envoy sends path_prefix + the request's path, which always starts with '/'; "
                    "this target never reaches an ext_authz check as such")
        return super().applicable(request, suite)

    def wire_request(self, request: Request) -> WireRequest:
        assert self.ctx is not None
        # As Envoy sends it: the original method, path_prefix + the original path and query.
        headers = [(b"Host", request.host)] + self.forwarded(request)
        return WireRequest(request.method, b"/ext_authz" + request.target, headers, source_of(request, self.ctx.suite))


class SidecarForwardAuth(HeaderCarried):
    mode = "forward-auth"
    title = "sidecar, forward-auth (direct)"
    # As Caddy and Traefik send it.
    endpoint = b"/forward-auth"
    carried = (b"X-Forwarded-Method", b"X-Forwarded-Uri", b"X-Forwarded-Host")
    extra = ((b"X-Forwarded-Proto", b"http"),)


class SidecarAuthRequest(HeaderCarried):
    mode = "auth-request"
    title = "sidecar, nginx auth_request (direct)"
    # As examples/nginx-auth-request sends it.
    endpoint = b"/auth-request"
    carried = (b"X-Original-Method", b"X-Original-URI", b"X-Original-Host")


class SidecarStandalone(SidecarDirect):
    mode = "standalone"
    title = "sidecar, standalone redirector"
    options = {"pass_status": 404}


# --------------------------------------------------------------------------- behind proxies


class ProxiedBackend(HTTPBackend):
    """A real proxy (testkit.proxies) in front of the origin asking a sidecar (auto listener)
    about every request; the proxy trusts the suite's trusted proxies."""

    profile = "auth-proxy"
    proxy = ""              # its testkit.proxies kind

    def missing(self):
        return serve_missing() + proxies.missing(self.proxy)

    def start(self, ctx: Context):
        super().start(ctx)
        self.origin = Origin()
        trusted = [] if PROXY_HOP in ctx.suite.trusted_proxies else [PROXY_HOP]
        self.sidecar = start_sidecar(ctx, self.name, [], [], trusted=trusted)
        work = ctx.workdir / self.name
        work.mkdir(parents=True, exist_ok=True)
        work.chmod(0o755)
        try:
            self.server = proxies.start_proxy(self.proxy, work, self.name, self.sidecar.port, self.origin.port,
                                              trusted=ctx.suite.trusted_proxies)
        except Exception:
            self.stop()
            raise
        self.port = self.server.port

    def health_unsupported(self) -> str | None:
        return None

    def take_health(self, prepared: Prepared) -> None:
        """Polls the sidecar's /readyz until the state it decides with is the one just written (its
        written-at time), or none for an unusable file or no file."""
        def check():
            _, body = self.sidecar.readyz()
            health = body.get("health")
            if prepared.usable:
                return bool(health) and health.get("written_at_ms") == prepared.written_ms, f"/readyz health {health}"
            return health is None, f"/readyz health {health}"

        wait_until_taken(check, prepared, 15.0, f"{self.name}'s sidecar")

    def stop(self):
        for attr in ("server", "sidecar", "origin"):
            process = getattr(self, attr, None)
            if process is not None:
                process.stop()
                setattr(self, attr, None)

    def problems(self):
        server = getattr(self, "server", None)
        return [f"{self.name}: {line}" for line in server.problems()] if server else []


def proxied(name: str, title: str, proxy: str, traits: set[str]) -> type[ProxiedBackend]:
    """The backend class of one proxy: they differ only in these."""
    traits = frozenset({"wire", "proxy", "auth-proxy", "sidecar", "resolves", "route-headers"} | traits)
    return type("".join(w.capitalize() for w in name.split("-")) + "Backend", (ProxiedBackend,),
                {"name": name, "title": title, "proxy": proxy, "traits": traits, "__doc__": title})


EnvoyBackend = proxied("envoy", "Envoy ext_authz → sidecar", "envoy", {"envoy"})
CaddyBackend = proxied("caddy", "Caddy forward_auth → sidecar", "caddy", {"caddy", "go"})
TraefikBackend = proxied("traefik", "Traefik ForwardAuth → sidecar", "traefik", {"traefik", "go"})
NginxAuthRequestBackend = proxied("nginx-auth-request", "nginx auth_request → sidecar", "nginx", {"nginx", "realip"})
