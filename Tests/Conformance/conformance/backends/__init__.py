"""Backend plugins. A new backend is one class (see base.Backend) plus one line in BACKENDS."""

from __future__ import annotations

from .base import Backend, Context, Throughput  # noqa: F401  (the protocol, for plugin authors)
from .http import GenericHTTPBackend
from .library import ABIBackend, CoreBackend
from .nginx import NginxLuaBackend, NginxModuleBackend
from .sidecar import (CaddyBackend, EnvoyBackend, NginxAuthRequestBackend, SidecarAuthRequest, SidecarExtAuthz,
                      SidecarForwardAuth, SidecarStandalone, TraefikBackend)

BACKENDS: dict[str, type[Backend]] = {cls.name: cls for cls in [
    CoreBackend,
    ABIBackend,
    NginxModuleBackend,
    NginxLuaBackend,
    SidecarExtAuthz,
    SidecarForwardAuth,
    SidecarAuthRequest,
    SidecarStandalone,
    EnvoyBackend,
    CaddyBackend,
    TraefikBackend,
    NginxAuthRequestBackend,
    GenericHTTPBackend,
]}

# Short column titles for the terminal table.
SHORT = {
    "core": "core", "abi": "abi", "nginx-module": "ngx", "nginx-lua": "lua", "sidecar-ext-authz": "xa",
    "sidecar-forward-auth": "fa", "sidecar-auth-request": "ar", "sidecar-standalone": "sa", "envoy": "envoy",
    "caddy": "caddy", "traefik": "trfk", "nginx-auth-request": "ngx-ar", "http": "http",
}

# `all` = every backend that needs no outside target.
ALL = [name for name in BACKENDS if name != "http"]


def resolve_names(spec: str, http_url: str | None = None) -> list[str]:
    """`all`, a comma list, or `all,-envoy` → backend names (http joins `all` when a URL is given)."""
    names: list[str] = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        if item == "all":
            names += ALL + (["http"] if http_url else [])
        elif item.startswith("-"):
            names = [n for n in names if n != item[1:]]
        elif item in BACKENDS:
            names.append(item)
        else:
            raise ValueError(f"unknown backend '{item}' (known: {', '.join(BACKENDS)}, all)")
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return seen
