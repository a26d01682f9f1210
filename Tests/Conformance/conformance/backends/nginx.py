"""NGINX backends: the dynamic module (`redirector on`) and the LuaJIT binding (`rdr:access()`),
each in a real nginx on free loopback ports (IPv4 and ::1), the suite's trustedProxies turned
into realip's set_real_ip_from, an origin server block behind it (testkit.nginx), stopped by PID."""

from __future__ import annotations

import shutil
from pathlib import Path

from testkit import paths
from testkit.http import free_port
from testkit.nginx import Nginx, make_prefix, render, trust_only

from .base import TEMPLATES, Context, HTTPBackend, need_file

NGINX_TRAITS = {"wire", "nginx", "realip", "resolves", "explain", "origin"}


class NginxBackend(HTTPBackend):
    """nginx rendered from one of the harness's templates (the origin answers with ORIGIN_HEADER)."""

    profile = "origin"
    listens_ipv6 = True
    explain_header = "X-Conformance-Explain"
    template = ""
    required: tuple[tuple[Path, str], ...] = ()    # (file, how to get it) besides nginx and the NDK

    def missing(self):
        out = need_file(Path(paths.NGINX), "apt-get install nginx; scripts/setup.sh")
        out += need_file(paths.NDK_MODULE, "apt-get install libnginx-mod-http-ndk")
        return out + [problem for path, hint in self.required for problem in need_file(path, hint)]

    def start(self, ctx: Context):
        super().start(ctx)
        root = ctx.workdir / self.name
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        prefix = make_prefix(root)
        live = prefix / "redirector.rdb"
        shutil.copyfile(ctx.snapshot, live)
        live.chmod(0o644)
        self.port = self.port6 = free_port()
        values = {"SNAPSHOT": live, "PORT": self.port, "ORIGIN_PORT": free_port(), "MODULE_DIR": paths.MODULE_DIR,
                  "LUA_DIR": paths.LUA_DIR, "LIBRARY": paths.LIBRARY}
        conf = render(TEMPLATES / self.template, prefix / "nginx.conf", values)
        trust_only(conf, ctx.suite.trusted_proxies)
        self.server = Nginx(prefix, conf, port=self.port, snapshot=live).start()

    def stop(self):
        server = getattr(self, "server", None)
        if server:
            server.stop()

    def problems(self):
        server = getattr(self, "server", None)
        return [f"{server.error_log}: {line}" for line in server.problems()] if server else []


def nginx_backend(name: str, title: str, trait: str, template: str, required) -> type[NginxBackend]:
    """The backend class of one way of deciding inside nginx: they differ only in these."""
    return type("".join(w.capitalize() for w in name.split("-")) + "Backend", (NginxBackend,),
                {"name": name, "title": title, "traits": frozenset(NGINX_TRAITS | {trait, "ipv6-peer"}),
                 "template": template, "required": tuple(required), "__doc__": title})


NginxModuleBackend = nginx_backend("nginx-module", "NGINX module (redirector on)", "nginx-module", "nginx-module.conf",
                                   [(paths.MODULE, "scripts/build-nginx-module.sh")])
NginxLuaBackend = nginx_backend("nginx-lua", "LuaJIT binding in nginx (rdr:access())", "lua", "nginx-lua.conf",
                                [(paths.LUA_MODULE, "apt-get install libnginx-mod-http-lua lua-resty-core"),
                                 (paths.LIBRARY, "scripts/build-library.sh"),
                                 (paths.LUA_DIR / "resty" / "redirector.lua", "the Lua binding")])
