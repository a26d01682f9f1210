"""Health state in NGINX: the module's `redirector_health_state` and the Lua binding's
`watch_health`, with two workers, against state files written by the independent encoder in
health_state.py and replaced atomically (rename), as the prober does.

A request goes to member A; A marked down → within 2 s every worker sends it to member B and says
so in `$redirector_step` / `$redirector_skipped` (Lua: d.step, d.skipped); a corrupt file → every
member up again, still answered, and the error log names the reason once per worker; a state that
goes stale while loaded, and a missing file, likewise. The route that looks at a request header
(`X-Mirror-Pin: origin` passes) sees the header through both.

Run: scripts/build.sh && python3 -m pytest Tests/Integration/test_health_nginx.py
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import health_state as hs
from testkit.http import free_port, request
from testkit.nginx import Nginx, make_prefix
from testkit.paths import LUA_DIR, LUA_MODULE, LUAJIT, MODULE_DIR, NDK_MODULE
from testkit.processes import run
from testkit.snapshots import compile_snapshot, replace_atomically

MANIFEST = "/v2/library/nginx/manifests/1.25"
PROPAGATION = 2.0   # interval 1s: every worker decides with a new state within this
WORKERS = 2

MODULE_CONF = """
load_module {module_dir}/ngx_http_redirector_module.so;
worker_processes {workers};
error_log logs/error.log notice;
pid logs/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    redirector_snapshot {snapshot};
    {health}
    set_real_ip_from 127.0.0.0/8;
    real_ip_header X-Forwarded-For;
    real_ip_recursive on;
    server {{
        listen 127.0.0.1:{port} reuseport;
        default_type text/plain;
        location / {{
            redirector on;
            add_header X-Worker $pid always;
            add_header X-Redirector-Pool $redirector_pool always;
            add_header X-Redirector-Member $redirector_member always;
            add_header X-Redirector-Step $redirector_step always;
            add_header X-Redirector-Skipped $redirector_skipped always;
            try_files /nonexistent @origin;
        }}
        location @origin {{
            return 200 "origin $request_uri\\n";
        }}
    }}
}}
"""

LUA_CONF = """
load_module {ndk};
load_module {lua_module};
worker_processes {workers};
error_log logs/error.log notice;
pid logs/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    lua_package_path "{lua_dir}/?.lua;;";
    init_by_lua_block {{
        rdr = assert(require("resty.redirector").new("{snapshot}", {{ library = "{library}" }}))
        {watch_in_init}
    }}
    init_worker_by_lua_block {{
        {watch_in_worker}
    }}
    set_real_ip_from 127.0.0.0/8;
    real_ip_header X-Forwarded-For;
    real_ip_recursive on;
    server {{
        listen 127.0.0.1:{port} reuseport;
        default_type text/plain;
        location / {{
            access_by_lua_block {{ return rdr:access() }}
            header_filter_by_lua_block {{
                local d = ngx.ctx.redirector
                local h = ngx.header
                h["X-Worker"] = ngx.worker.pid()
                if d then
                    h["X-Redirector-Pool"] = d.pool
                    h["X-Redirector-Member"] = d.member
                    h["X-Redirector-Step"] = d.step
                    h["X-Redirector-Skipped"] = d.skipped
                end
            }}
            try_files /nonexistent @origin;
        }}
        location @origin {{
            return 200 "origin $request_uri\\n";
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def snapshot(cli, tmp_path_factory):
    work = tmp_path_factory.mktemp("health-nginx")
    work.chmod(0o755)
    path = compile_snapshot(hs.write_policy(work), work / "health.rdb")
    return path


def start(nginx, kind: str, snapshot: Path, library: Path, state: Path | None = None, health: str | None = None,
          check: bool = True, watch_in: str = "init_worker") -> Nginx:
    prefix, port = make_prefix(nginx.root), free_port()
    state = state or prefix / "health.state"
    watch = f'assert(rdr:watch_health("{state}", 1))'
    values = dict(module_dir=MODULE_DIR, workers=WORKERS, snapshot=snapshot, port=port, state=state,
                  watch_in_init=watch if watch_in == "init" else "", watch_in_worker=watch if watch_in != "init" else "",
                  health=health if health is not None else f"redirector_health_state {state};\n"
                                                            "    redirector_health_check_interval 1s;",
                  ndk=NDK_MODULE, lua_module=LUA_MODULE, lua_dir=LUA_DIR, library=library)
    conf = prefix / "nginx.conf"
    conf.write_text((MODULE_CONF if kind == "module" else LUA_CONF).format(**values))
    server = Nginx(prefix, conf, port=port)
    server.state = state
    nginx.servers.append(server)
    return server.start() if check else server


def ask(server: Nginx, headers=()) -> dict:
    resp = request(server.port, "GET", MANIFEST, client=hs.CLIENT, headers=headers, timeout=5)
    return {"status": resp.status, "location": resp.location, "worker": resp.header("X-Worker"),
            "pool": resp.header("X-Redirector-Pool"), "member": resp.header("X-Redirector-Member"),
            "step": resp.header("X-Redirector-Step"), "skipped": resp.header("X-Redirector-Skipped") or "",
            "body": resp.body}


def every_worker_says(server: Nginx, predicate, timeout: float, what: str) -> float:
    """Polls until each worker's latest answer satisfies `predicate` and every answer after that
    does too; returns the seconds it took. Fails after `timeout`."""
    start = time.monotonic()
    workers = server.worker_pids()
    assert len(workers) == WORKERS
    settled: dict[str, bool] = {}
    while True:
        elapsed = time.monotonic() - start
        answers = [ask(server) for _ in range(8)]
        for a in answers:
            settled[a["worker"]] = predicate(a)
        if len(settled) == WORKERS and all(settled.values()):
            break
        assert elapsed < timeout, f"{what}: not every worker after {timeout}s: {answers}"
        time.sleep(0.05)
    for a in [ask(server) for _ in range(20)]:
        assert predicate(a), f"{what}: a later answer disagrees: {a}"
    return elapsed


def error_lines(server: Nginx, text: str) -> list[str]:
    return [line for line in server.error_text().splitlines() if text in line]


def scenario(server: Nginx) -> dict:
    """The state changes every backend must follow; returns the propagation delays."""
    delays = {}
    first = ask(server)
    assert first["status"] == 302 and first["member"] in hs.MEMBERS, first
    a = first["member"]
    assert first["location"] == a + MANIFEST and first["pool"] == "eu" and first["step"] == "primary", first
    assert f"{a}(eu):" not in first["skipped"]
    # The header route: passes to the origin.
    pinned = ask(server, headers=[("X-Mirror-Pin", "origin")])
    assert pinned["status"] == 200 and pinned["body"] == f"origin {MANIFEST}\n".encode(), pinned

    # A down.
    replace_atomically(hs.state(down={hs.MEMBERS.index(a)}), server.state)
    delays["down"] = every_worker_says(server, lambda x: x["status"] == 302 and x["member"] not in (None, a),
                                       PROPAGATION, "member A down")
    b = ask(server)
    assert b["location"] == b["member"] + MANIFEST and b["step"] == "primary", b
    assert f"{a}(eu):down" in b["skipped"].split(" "), b

    # A corrupt file: every member up, the reason in the log (once per worker).
    good = bytearray(hs.state(down={hs.MEMBERS.index(a)}))
    good[50] ^= 0x10
    replace_atomically(bytes(good), server.state)
    delays["corrupt"] = every_worker_says(server, lambda x: x["member"] == a, PROPAGATION, "corrupt file")
    time.sleep(1.5)  # more ticks: the same reason is not logged again
    logged = error_lines(server, "checksum mismatch")
    assert 1 <= len(logged) <= WORKERS, logged
    assert all(f'redirector: health state "{server.state}": checksum mismatch' in line
               and "(deciding without health)" in line and "[error]" in line for line in logged), logged

    # A state that goes stale while loaded: used, then dropped.
    replace_atomically(hs.state(down={hs.MEMBERS.index(a)}, written_ms=hs.now_ms() - 7_000, stale_after_ms=10_000),
                       server.state)
    every_worker_says(server, lambda x: x["member"] not in (None, a), PROPAGATION, "short-lived state")
    delays["stale"] = every_worker_says(server, lambda x: x["member"] == a, 3.0 + PROPAGATION, "stale state")
    assert error_lines(server, "stale"), server.error_text()[-2000:]

    # A good state again, then the file removed.
    replace_atomically(hs.state(down={hs.MEMBERS.index(a)}), server.state)
    every_worker_says(server, lambda x: x["member"] not in (None, a), PROPAGATION, "state restored")
    server.state.unlink()
    delays["missing"] = every_worker_says(server, lambda x: x["member"] == a, PROPAGATION, "missing file")
    assert error_lines(server, "No such file or directory"), server.error_text()[-2000:]
    print(f"propagation delays (s): {delays}")
    return delays


def test_module_follows_the_health_state(nginx, nginx_module, library, snapshot):
    server = start(nginx, "module", snapshot, library)
    # Started before any state file exists: decided without health, and said so.
    assert error_lines(server, "stat() failed (2: No such file or directory)"), server.error_text()
    replace_atomically(hs.state(), server.state)
    scenario(server)


@pytest.mark.skipif(not LUA_MODULE.exists(), reason="libnginx-mod-http-lua is not installed")
@pytest.mark.parametrize("watch_in", ["init_worker", "init"])
def test_lua_binding_follows_the_health_state(nginx, library, snapshot, watch_in):
    """watch_health() in init_worker_by_lua (a timer per worker at once) or in init_by_lua (the
    master reads the file; each worker starts its timer at its first decision)."""
    server = start(nginx, "lua", snapshot, library, watch_in=watch_in)
    replace_atomically(hs.state(), server.state)
    scenario(server)


@pytest.mark.parametrize("health,message", [
    ("redirector_health_state;", "invalid number of arguments"),
    ('redirector_health_state "";', "has an empty path"),
    ("redirector_health_state a; redirector_health_state b;", "is duplicate"),
    ("redirector_health_state a; redirector_health_check_interval 0;", "must be positive"),
    ("redirector_health_state a; redirector_health_check_interval often;", "invalid value"),
])
def test_directive_errors(nginx, nginx_module, library, snapshot, health, message):
    server = start(nginx, "module", snapshot, library, health=health, check=False)
    server.allowed_log.append(message)
    result = server.test_config()
    assert result.returncode != 0 and "[emerg]" in result.stderr and message in result.stderr, result.stderr


def test_health_state_needs_a_snapshot(nginx, nginx_module, library, snapshot, tmp_path):
    server = start(nginx, "module", snapshot, library, check=False)
    server.conf.write_text(server.conf.read_text().replace(f"redirector_snapshot {snapshot};", "")
                           .replace("redirector on;", ""))
    server.allowed_log.append('requires "redirector_snapshot"')
    result = server.test_config()
    assert result.returncode != 0 and '"redirector_health_state" requires "redirector_snapshot"' in result.stderr, \
        result.stderr


LUA_PLAIN = r"""
package.path = arg[1] .. "/?.lua;" .. package.path
local redirector = require "resty.redirector"
local rdr = assert(redirector.new(arg[2], { library = arg[3] }))
local state = arg[4]
assert(rdr:watch_health(state, 0.2))
local function show(tag, headers)
  local d = assert(rdr:decide("192.0.2.10", "GET", "mirror.test", "/v2/library/nginx/manifests/1.25", headers))
  local s = rdr:health_status()
  io.write(table.concat({ tag, d.action, d.member or "-", d.step or "-", d.skipped or "-",
                          tostring(s.active), tostring(s.down), s.error or "-" }, "\t"), "\n")
  io.flush()
end
show("start")
show("pinned", { ["X-Mirror-Pin"] = "origin" })
show("pinned-list", { ["x-mirror-pin"] = { "other", "origin" } })
for line in io.lines() do   -- the test rewrites the file, then sends a tag
  if line == "wait" then
    local t = os.clock() + 0.3
    while os.clock() < t do end
  else
    show(line)
  end
end
"""


@pytest.mark.skipif(LUAJIT is None, reason="luajit is not installed")
def test_lua_binding_outside_nginx(library, snapshot, tmp_path):
    """Outside nginx decide() re-reads the file at most once per interval."""
    import subprocess
    state = tmp_path / "health.state"
    replace_atomically(hs.state(), state)
    script = tmp_path / "watch.lua"
    script.write_text(LUA_PLAIN)
    proc = subprocess.Popen([LUAJIT, str(script), str(LUA_DIR), str(snapshot), str(library), str(state)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def line(command: str | None = None) -> list[str]:
        if command:
            proc.stdin.write(command + "\n")
            proc.stdin.flush()
        return proc.stdout.readline().rstrip("\n").split("\t")

    try:
        start = line()
        assert start[1] == "redirect" and start[2] in hs.MEMBERS and start[5] == "true", start
        a = start[2]
        assert line()[1] == "pass" and line()[1] == "pass"  # the header route, from a table of headers
        replace_atomically(hs.state(down={hs.MEMBERS.index(a)}), state)
        proc.stdin.write("wait\n")
        down = line("down")
        assert down[2] not in ("-", a) and f"{a}(eu):down" in down[4].split(" ") and down[6] == "1", down
        state.write_bytes(b"garbage " * 16)
        proc.stdin.write("wait\n")
        bad = line("bad")
        assert bad[2] == a and bad[5] == "false" and "bad magic" in bad[7], bad
    finally:
        proc.stdin.close()
        proc.wait(10)
    errors = proc.stderr.read()
    assert errors.count("bad magic") == 1, errors
