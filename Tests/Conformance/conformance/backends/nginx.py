"""NGINX backends: the dynamic module (`redirector on`) and the LuaJIT binding (`rdr:access()`),
each in a real nginx on free loopback ports (IPv4 and ::1), the suite's trustedProxies turned
into realip's set_real_ip_from, an origin server block behind it (testkit.nginx), stopped by PID."""

from __future__ import annotations

import shutil
from pathlib import Path

from testkit import paths
from testkit.http import free_port
from testkit.nginx import Nginx, make_prefix, render, trust_only

from .. import presence
from .base import TEMPLATES, Context, HTTPBackend, need_file

# The internal location of presence checks (suites with mirrors).
CHECK_LOCATION = "/_redirector_presence"

# route-headers: the module (and the binding) pass the request headers the routes look at.
NGINX_TRAITS = {"wire", "nginx", "realip", "resolves", "explain", "origin", "route-headers"}


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
                  "LUA_DIR": paths.LUA_DIR, "LIBRARY": paths.LIBRARY,
                  "HEALTH": self.health_config(ctx.health_file) if ctx.health_file else "",
                  "EXPLAIN_POOLS": self.explain_pools(bool(ctx.suite.config.get("pools"))),
                  "PRESENCE": "", "LUA_OPTIONS": ""}
        if ctx.suite.mirrors is not None:
            timeout = f"{max(1, round(presence.Settings.of(ctx.suite.config).timeout * 1000))}ms"
            values["PRESENCE"] = self.presence_config(CHECK_LOCATION, timeout)
            values["LUA_OPTIONS"] = f', presence_check = "{CHECK_LOCATION}"'
        conf = render(TEMPLATES / self.template, prefix / "nginx.conf", values)
        trust_only(conf, ctx.suite.trusted_proxies)
        self.server = Nginx(prefix, conf, port=self.port, snapshot=live).start()

    def explain_pools(self, pools: bool) -> str:
        """The template's EXPLAIN_POOLS for a config with or without pools: what adds pool, step,
        member and skipped to the explain header (left out without pools: `skipped` decides again,
        which would weigh on the throughput measured on the other suites)."""
        raise NotImplementedError

    def presence_config(self, uri: str, timeout: str) -> str:
        """The server-level lines that check presence through the internal location `uri`."""
        raise NotImplementedError

    def health_config(self, path: Path) -> str:
        """The http-level lines that make the workers decide with the state file at `path`
        (checked every 100 ms, so that a case group need not wait long)."""
        raise NotImplementedError

    def stop(self):
        server = getattr(self, "server", None)
        if server:
            server.stop()

    def problems(self):
        server = getattr(self, "server", None)
        return [f"{server.error_log}: {line}" for line in server.problems()] if server else []


def check_location(uri: str, url_variable: str, timeout: str) -> str:
    """The internal location that HEADs a candidate's URL for a presence check (no cache: each
    case's HEADs reach the mirrors), given the line that sets $redirector_check_url, if any."""
    return f"""location = {uri} {{
            internal;
            {url_variable}
            proxy_pass $redirector_check_url;
            proxy_pass_request_body off;
            proxy_pass_request_headers off;
            proxy_connect_timeout {timeout};
            proxy_send_timeout {timeout};
            proxy_read_timeout {timeout};
            proxy_next_upstream off;
        }}"""


def nginx_backend(name: str, title: str, trait: str, template: str, required, health, pools,
                  presence_lines) -> type[NginxBackend]:
    """The backend class of one way of deciding inside nginx: they differ only in these (`health`:
    path → the config lines that watch a health state file; `pools`: (with, without) as
    EXPLAIN_POOLS; `presence_lines`: (check location URI, timeout) → the server-level lines of
    presence checks)."""
    return type("".join(w.capitalize() for w in name.split("-")) + "Backend", (NginxBackend,),
                {"name": name, "title": title,
                 "traits": frozenset(NGINX_TRAITS | {trait, "ipv6-peer"}),
                 "template": template, "required": tuple(required), "__doc__": title,
                 "health_config": lambda self, path: health(path),
                 "presence_config": lambda self, uri, timeout: presence_lines(uri, timeout),
                 "explain_pools": lambda self, with_pools: pools[0] if with_pools else pools[1]})


NginxModuleBackend = nginx_backend("nginx-module", "NGINX module (redirector on)", "nginx-module", "nginx-module.conf",
                                   [(paths.MODULE, "scripts/build-nginx-module.sh")],
                                   lambda path: f"redirector_health_state {path};\n    redirector_health_check_interval 100ms;",
                                   (" pool=$redirector_pool step=$redirector_step member=$redirector_member"
                                    " skipped=$redirector_skipped", ""),
                                   lambda uri, timeout: f"redirector_presence_check {uri};\n        "
                                                        + check_location(uri, "", timeout))
NginxLuaBackend = nginx_backend("nginx-lua", "LuaJIT binding in nginx (rdr:access())", "lua", "nginx-lua.conf",
                                [(paths.LUA_MODULE, "apt-get install libnginx-mod-http-lua lua-resty-core"),
                                 (paths.LIBRARY, "scripts/build-library.sh"),
                                 (paths.LUA_DIR / "resty" / "redirector.lua", "the Lua binding")],
                                lambda path: f'init_worker_by_lua_block {{ assert(rdr:watch_health("{path}", 0.1)) }}',
                                ("true", "false"),
                                lambda uri, timeout: check_location(
                                    uri, "set_by_lua_block $redirector_check_url { return ngx.ctx.redirector_check_url }\n"
                                         '            header_filter_by_lua_block { require("resty.redirector").check_header_filter() }',
                                    timeout))
