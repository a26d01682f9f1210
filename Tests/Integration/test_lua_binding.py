"""lua/resty/redirector.lua (LuaJIT FFI) inside Debian's lua-nginx-module, and in plain
LuaJIT: same answers as the C module for the same requests.

Run: scripts/build-library.sh && scripts/build-nginx-module.sh &&
     python3 -m pytest Tests/Integration/test_lua_binding.py
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from harness import (AWS, CASES, LUA_MODULE, MANIFEST, REPO, case_problems, free_port,
                     http_request, log_problems, replace_atomically, run, send_case, start_example)

LUA_EXAMPLE = REPO / "examples" / "openresty" / "nginx.conf"
LUA_DIR = REPO / "lua"
LUAJIT = shutil.which("luajit")
COMPARED_HEADERS = ("Location", "Content-Length", "Docker-Distribution-Api-Version",
                    "Cache-Control")
LOG_KEYS = ("client", "status", "location", "action", "target", "provider", "region",
            "prefix", "asn", "route")

pytestmark = pytest.mark.skipif(not LUA_MODULE.exists(),
                                reason="libnginx-mod-http-lua is not installed")


def start_lua(nginx_factory, library: Path, snapshot: Path, start: bool = True):
    port, origin = free_port(), free_port()

    def values(prefix: Path) -> dict:
        live = prefix / "redirector.rdb"
        shutil.copyfile(snapshot, live)
        live.chmod(0o644)
        return {"LUA_DIR": LUA_DIR, "LIBRARY": library, "SNAPSHOT": live, "PORT": port,
                "ORIGIN_PORT": origin}

    server = nginx_factory(LUA_EXAMPLE, values)
    server.port = port
    server.snapshot = server.prefix / "redirector.rdb"
    if start:
        server.start(port)
    return server


def test_same_answers_and_log_as_the_c_module(nginx_factory, nginx_module, library, snapshots):
    c = start_example(nginx_factory, snapshots["main"])
    lua = start_lua(nginx_factory, library, snapshots["main"])
    problems = []
    for case in CASES:
        a, b = send_case(c.port, case), send_case(lua.port, case)
        problems += [f"lua {case.name}: {p}" for p in case_problems(case, b)]
        if a.status != b.status:
            problems.append(f"{case.name}: status C {a.status}, Lua {b.status}")
        for h in COMPARED_HEADERS:
            if a.header(h) != b.header(h):
                problems.append(f"{case.name}: {h} C {a.header(h)!r}, Lua {b.header(h)!r}")
        if a.body != b.body:
            problems.append(f"{case.name}: body C {a.body[:60]!r}, Lua {b.body[:60]!r}")

    c_log = c.wait_access_entries(len(CASES))
    lua_log = lua.wait_access_entries(len(CASES))
    assert len(c_log) == len(lua_log) == len(CASES)
    for case, x, y in zip(CASES, c_log, lua_log):
        problems += [f"lua {case.name}: {p}" for p in log_problems(case, y)]
        for key in LOG_KEYS:
            if x.get(key) != y.get(key):
                problems.append(f"{case.name}: log {key} C {x.get(key)!r}, Lua {y.get(key)!r}")
    assert not problems, "\n".join(problems)


def test_lua_reload_switches_snapshot(nginx_factory, library, snapshots):
    server = start_lua(nginx_factory, library, snapshots["main"])
    resp = http_request(server.port, "GET", MANIFEST, client="192.0.2.10")
    assert (resp.status, resp.location) == (302, AWS + MANIFEST)
    old = server.worker_pids()
    replace_atomically(snapshots["alt"], server.snapshot)
    assert server.reload().returncode == 0
    server.wait_new_workers(old)
    resp = http_request(server.port, "GET", MANIFEST, client="192.0.2.10")
    assert (resp.status, resp.location) == (308, "https://registry2.aws.test" + MANIFEST)


@pytest.mark.parametrize("which", ["garbage", "missing"])
def test_lua_bad_snapshot_fails_start(nginx_factory, library, snapshots, which):
    """lua-nginx-module skips init_by_lua under `nginx -t`; starting fails instead."""
    server = start_lua(nginx_factory, library, snapshots["main"], start=False)
    if which == "missing":
        server.snapshot.unlink()
    else:
        shutil.copyfile(snapshots[which], server.snapshot)
    result = run(server.cmd("-g", "daemon off;"), check=False, timeout=30)
    assert result.returncode != 0
    output = result.stderr + server.log_text()
    assert "init_by_lua" in output and str(server.snapshot) in output, output
    server.allowed_log.append("init_by_lua")


def test_lua_bad_snapshot_reload_keeps_old_workers(nginx_factory, library, snapshots):
    server = start_lua(nginx_factory, library, snapshots["main"])
    server.allowed_log.append("init_by_lua")
    old = server.worker_pids()
    replace_atomically(snapshots["corrupt"], server.snapshot)
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "init_by_lua" not in server.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert str(server.snapshot) in server.log_text()
    time.sleep(0.3)
    assert server.worker_pids() == old
    for _ in range(10):
        resp = http_request(server.port, "GET", MANIFEST, client="192.0.2.10")
        assert (resp.status, resp.location) == (302, AWS + MANIFEST)


LUA_SCRIPT = r"""
package.path = arg[1] .. "/?.lua;" .. package.path
local redirector = require "resty.redirector"
local rdr, err = redirector.new(arg[2], { library = arg[3] })
if not rdr then io.stderr:write(err, "\n") os.exit(3) end
local function out(...) io.write(table.concat({...}, "\t"), "\n") end
for line in io.lines(arg[4]) do
  local client, method, path = line:match("^(.-)\t(.-)\t(.*)$")
  local d = assert(rdr:decide(client, method, "mirror.test", path))
  local hs = {}
  for _, h in ipairs(d.headers or {}) do hs[#hs + 1] = h[1] .. "=" .. h[2] end
  out("D", d.action, d.status, d.location or "", d.provider or "", d.region or "",
      d.prefix or "", d.asn or "", d.route or "", table.concat(hs, ","))
end
for _, a in ipairs({"192.0.2.10", "::ffff:192.0.2.10", "01.2.3.4", "127.1", "fe80::1%eth0",
                    "2001:db8:b::1", "10.0.0.1", ""}) do
  local name, idx = rdr:lookup(a)
  out("L", a, name or "-", idx or "-")
end
local missing, merr = redirector.new(arg[2] .. ".missing", { library = arg[3] })
out("M", tostring(missing), merr or "")
out("P", table.concat(rdr:provider_names(), ","))
"""


@pytest.mark.skipif(LUAJIT is None, reason="luajit is not installed")
def test_binding_in_plain_luajit(library, snapshots, tmp_path):
    script = tmp_path / "t.lua"
    script.write_text(LUA_SCRIPT)
    requests = tmp_path / "requests.tsv"
    cases = [c for c in CASES if c.raw_target is None and "," not in (c.client or "")
             and c.client != "not-an-address"]
    requests.write_text("".join(f"{c.client}\t{c.method}\t{c.path}\n" for c in cases))
    proc = run([LUAJIT, script, LUA_DIR, snapshots["main"], library, requests])
    lines = [line.split("\t") for line in proc.stdout.splitlines()]
    decisions = [line[1:] for line in lines if line[0] == "D"]
    assert len(decisions) == len(cases)
    problems = []
    for c, d in zip(cases, decisions):
        action, status, location, provider, region, prefix, asn, route, headers = d
        want = {"action": c.action, "location": c.location or "", "provider": c.provider,
                "region": c.region, "prefix": c.prefix, "asn": c.asn, "route": c.route}
        got = {"action": action, "location": location, "provider": provider, "region": region,
               "prefix": prefix, "asn": asn, "route": route}
        for k, v in want.items():
            if v is not None and got[k] != v:
                problems.append(f"{c.name}: {k} {got[k]!r}, want {v!r}")
        if c.action != "pass" and int(status) != c.status:
            problems.append(f"{c.name}: status {status}, want {c.status}")
        for name, value in c.headers:
            if f"{name}={value}" not in headers.split(","):
                problems.append(f"{c.name}: header {name} missing in {headers!r}")
    assert not problems, "\n".join(problems)

    lookups = {line[1]: line[2] for line in lines if line[0] == "L"}
    assert lookups == {"192.0.2.10": "aws", "::ffff:192.0.2.10": "aws", "01.2.3.4": "-",
                       "127.1": "-", "fe80::1%eth0": "-", "2001:db8:b::1": "gcp",
                       "10.0.0.1": "-", "": "-"}
    [missing] = [line for line in lines if line[0] == "M"]
    assert missing[1] == "nil" and ".missing" in missing[2]
    [providers] = [line for line in lines if line[0] == "P"]
    assert {"aws", "gcp", "examplecloud"} <= set(providers[1].split(","))
