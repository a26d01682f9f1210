"""NGINX backends: the dynamic module (`redirector on`) and the LuaJIT binding (`rdr:access()`),
each in a real nginx on free loopback ports (IPv4 and ::1), the suite's trustedProxies turned
into realip's set_real_ip_from, an origin server block behind it. Started with the
integration tests' helpers (Tests/Integration/harness.py), stopped by PID."""

from __future__ import annotations

import shutil
from pathlib import Path

from .base import LIBRARY, TEMPLATES, Context, HTTPBackend, need_file

import harness as nginx_helpers  # Tests/Integration/harness.py  # noqa: E402

NGINX_TRAITS = {"wire", "nginx", "realip", "resolves", "explain", "origin"}


def realip_lines(trusted: list[str]) -> str:
    lines = [f"        set_real_ip_from {p};" for p in trusted]
    return "\n".join(lines) if lines else "        # (no trusted proxies)"


class NginxBackend(HTTPBackend):
    profile = "origin"
    listens_ipv6 = True
    template = ""
    explain_header = "X-Conformance-Explain"

    def missing(self):
        out = []
        if not Path(nginx_helpers.NGINX).exists():
            out.append("nginx is not installed (apt-get install nginx; scripts/setup.sh)")
        return out + need_file(Path("/usr/lib/nginx/modules/ndk_http_module.so"),
                               "apt-get install libnginx-mod-http-ndk")

    def values(self, prefix: Path, live: Path) -> dict:
        raise NotImplementedError

    def start(self, ctx: Context):
        super().start(ctx)
        root = ctx.workdir / self.name
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        prefix = nginx_helpers.make_prefix(root)
        live = prefix / "redirector.rdb"
        shutil.copyfile(ctx.snapshot, live)
        live.chmod(0o644)
        self.port = nginx_helpers.free_port()
        self.port6 = self.port
        origin = nginx_helpers.free_port()
        values = {"SNAPSHOT": live, "PORT": self.port, "ORIGIN_PORT": origin,
                  "REALIP": realip_lines(ctx.suite.trusted_proxies), **self.values(prefix, live)}
        conf = nginx_helpers.render(TEMPLATES / self.template, prefix / "nginx.conf", values)
        self.server = nginx_helpers.Nginx(prefix=prefix, conf=conf)
        self.server.start(self.port)

    def stop(self):
        server = getattr(self, "server", None)
        if server:
            server.stop()

    def problems(self):
        server = getattr(self, "server", None)
        return [f"{server.error_log}: {line}" for line in server.bad_log_lines()] if server else []


class NginxModuleBackend(NginxBackend):
    name = "nginx-module"
    title = "NGINX module (redirector on)"
    traits = frozenset(NGINX_TRAITS | {"nginx-module", "ipv6-peer"})
    template = "nginx-module.conf"

    def missing(self):
        return super().missing() + need_file(nginx_helpers.MODULE, "scripts/build-nginx-module.sh")

    def values(self, prefix, live):
        return {"MODULE_DIR": nginx_helpers.MODULE_DIR}


class NginxLuaBackend(NginxBackend):
    name = "nginx-lua"
    title = "LuaJIT binding in nginx (rdr:access())"
    traits = frozenset(NGINX_TRAITS | {"lua", "ipv6-peer"})
    template = "nginx-lua.conf"

    def missing(self):
        return (super().missing()
                + need_file(nginx_helpers.LUA_MODULE, "apt-get install libnginx-mod-http-lua lua-resty-core")
                + need_file(LIBRARY, "scripts/build-library.sh")
                + need_file(nginx_helpers.REPO / "lua" / "resty" / "redirector.lua", "the Lua binding"))

    def values(self, prefix, live):
        return {"LUA_DIR": nginx_helpers.REPO / "lua", "LIBRARY": LIBRARY}


