"""lua/resty/redirector.lua (LuaJIT FFI) inside Debian's lua-nginx-module, and in plain
LuaJIT: every conformance suite case, and the same answers and log as the C module.

Run: scripts/build-library.sh && scripts/build-nginx-module.sh &&
     python3 -m pytest Tests/Integration/test_lua_binding.py
"""

from __future__ import annotations

import signal
import time

import pytest

from conformance.check import Observation, judge
from suite_cases import (always_decided, answer_problems, ask, assert_backend_passes, example_carries, log_problems,
                         without_presence_checks)
from testkit.fixtures import AWS, AWS2, MANIFEST
from testkit.http import request
from testkit.paths import LUA_DIR, LUA_MODULE, LUAJIT
from testkit.processes import run
from testkit.snapshots import replace_atomically

COMPARED_HEADERS = ("Location", "Content-Length", "Docker-Distribution-Api-Version", "Allow", "Cache-Control")
LOG_KEYS = ("client", "status", "location", "action", "target", "provider", "region", "prefix", "asn", "route")

pytestmark = pytest.mark.skipif(not LUA_MODULE.exists(), reason="libnginx-mod-http-lua is not installed")


def test_every_suite_case_passes(suite_results, library):
    """The conformance suites on the binding in nginx (the harness's config: `rdr:access()`,
    realip from the suite's trusted proxies, the decision in a debug header)."""
    assert_backend_passes(suite_results("nginx-lua"), "nginx-lua")


def test_same_answers_and_log_as_the_c_module(nginx, nginx_module, library, suites, compiled_suites):
    """examples/openresty answers every suite case the examples carry as the suite expects and
    exactly as examples/nginx (the C module) does, and logs the same explanation."""
    snapshots, _ = compiled_suites
    problems, compared = [], 0
    for suite in without_presence_checks(suites):
        c = nginx.example("module", snapshots[suite.name], trusted=suite.trusted_proxies)
        lua = nginx.example("lua", snapshots[suite.name], trusted=suite.trusted_proxies)
        cases = [case for case in suite.cases if example_carries(case, suite, "lua")]
        decided = [case for case in cases if always_decided(case, "lua") and always_decided(case, "module")]
        rest = [case for case in cases if case not in decided]
        pairs = [(ask(c.port, suite, case, "module"), ask(lua.port, suite, case, "lua")) for case in decided + rest]
        compared += len(pairs)
        for a, b in pairs:
            name = a.case.id
            problems += answer_problems(b)
            if (a.response is None) != (b.response is None):
                problems.append(f"{name}: C answered {a.response is not None}, Lua {b.response is not None}")
                continue
            if a.response is None:
                continue
            if a.response.status != b.response.status:
                problems.append(f"{name}: status C {a.response.status}, Lua {b.response.status}")
            for h in COMPARED_HEADERS:
                if a.response.header(h) != b.response.header(h):
                    problems.append(f"{name}: {h} C {a.response.header(h)!r}, Lua {b.response.header(h)!r}")
            if a.response.body != b.response.body:
                problems.append(f"{name}: body C {a.response.body[:60]!r}, Lua {b.response.body[:60]!r}")
        c_log = c.wait_access_entries(len(pairs))[:len(decided)]
        lua_log = lua.wait_access_entries(len(pairs))[:len(decided)]
        assert len(c_log) == len(lua_log) == len(decided), (suite.name, len(c_log), len(lua_log), len(decided))
        for (_, b), x, y in zip(pairs, c_log, lua_log):
            problems += log_problems(b, y)
            for key in LOG_KEYS:
                if x.get(key) != y.get(key):
                    problems.append(f"{b.case.id}: log {key} C {x.get(key)!r}, Lua {y.get(key)!r}")
        c.stop()
        lua.stop()
    assert compared >= 150, f"only {compared} cases compared"
    assert not problems, "\n".join(problems)


def test_lua_reload_switches_snapshot(nginx, library, snapshots):
    server = nginx.example("lua", snapshots["main"])
    resp = request(server.port, "GET", MANIFEST, client="192.0.2.10")
    assert (resp.status, resp.location) == (302, AWS + MANIFEST)
    old = server.worker_pids()
    replace_atomically(snapshots["alt"], server.snapshot)
    assert server.reload().returncode == 0
    server.wait_new_workers(old)
    resp = request(server.port, "GET", MANIFEST, client="192.0.2.10")
    assert (resp.status, resp.location) == (308, AWS2 + MANIFEST)


@pytest.mark.parametrize("which", ["garbage", "missing"])
def test_lua_bad_snapshot_fails_start(nginx, library, snapshots, which):
    """lua-nginx-module skips init_by_lua under `nginx -t`; starting fails instead."""
    server = nginx.example("lua", snapshots["main"], start=False)
    server.use_snapshot(snapshots.get(which))  # "missing": no file at all
    result = run(server.command("-g", "daemon off;"), check=False, timeout=30)
    assert result.returncode != 0
    output = result.stderr + server.error_text()
    assert "init_by_lua" in output and str(server.snapshot) in output, output
    server.allowed_log.append("init_by_lua")


def test_lua_bad_snapshot_reload_keeps_old_workers(nginx, library, snapshots):
    server = nginx.example("lua", snapshots["main"])
    server.allowed_log.append("init_by_lua")
    old = server.worker_pids()
    replace_atomically(snapshots["corrupt"], server.snapshot)
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "init_by_lua" not in server.error_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert str(server.snapshot) in server.error_text()
    time.sleep(0.3)
    assert server.worker_pids() == old
    for _ in range(10):
        resp = request(server.port, "GET", MANIFEST, client="192.0.2.10")
        assert (resp.status, resp.location) == (302, AWS + MANIFEST)


LUA_SCRIPT = r"""
package.path = arg[1] .. "/?.lua;" .. package.path
local redirector = require "resty.redirector"
local rdr, err = redirector.new(arg[2], { library = arg[3] })
if not rdr then io.stderr:write(err, "\n") os.exit(3) end
local function out(...) io.write(table.concat({...}, "\t"), "\n") end
local function unhex(s) return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)) end
local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
-- requests: one per line, client, method, host and target hex-encoded (they may hold any byte)
for line in io.lines(arg[4]) do
  local client, method, host, path = line:match("^(%x*) (%x*) (%x*) (%x*)$")
  local d = assert(rdr:decide(unhex(client), unhex(method), unhex(host), unhex(path)))
  local hs = {}
  for _, h in ipairs(d.headers or {}) do hs[#hs + 1] = hex(h[1]) .. "=" .. hex(h[2]) end
  out("D", d.action, d.status, hex(d.location or ""), d.provider or "", d.region or "",
      d.prefix or "", d.asn or "", d.route or "", table.concat(hs, ","))
end
if arg[5] then
  for _, a in ipairs({"192.0.2.10", "::ffff:192.0.2.10", "01.2.3.4", "127.1", "fe80::1%eth0",
                      "2001:db8:b::1", "10.0.0.1", ""}) do
    local name, idx = rdr:lookup(a)
    out("L", a, name or "-", idx or "-")
  end
  local missing, merr = redirector.new(arg[2] .. ".missing", { library = arg[3] })
  out("M", tostring(missing), merr or "")
  out("P", table.concat(rdr:provider_names(), ","))
end
"""


def luajit_decisions(script, snapshot, library, requests, cases, lookups: bool = False) -> list[list[str]]:
    """The script's output lines (tab-separated fields) for `cases` on `snapshot`."""
    requests.write_text("".join(" ".join(v.hex() for v in (c.request.client, c.request.method, c.request.host,
                                                           c.request.target)) + "\n" for c in cases))
    proc = run([LUAJIT, script, LUA_DIR, snapshot, library, requests] + (["lookups"] if lookups else []))
    return [line.split("\t") for line in proc.stdout.splitlines()]


@pytest.mark.skipif(LUAJIT is None, reason="luajit is not installed")
def test_binding_in_plain_luajit(library, snapshots, suites, compiled_suites, tmp_path):
    """rdr:decide outside nginx decides every suite case that names its client as the suite expects
    (the binding takes a resolved client address); lookups, errors and provider names."""
    script = tmp_path / "t.lua"
    script.write_text(LUA_SCRIPT)
    problems, decided = [], 0
    for suite in without_presence_checks(suites):
        # The script decides with neither a health state nor request headers: cases that need
        # either are covered in nginx (test_health_nginx.py, the conformance run's nginx-lua).
        cases = [c for c in suite.cases if c.request.client is not None and not c.request.headers
                 and (c.health is None or c.health.describe() == "no health state file")]
        decided += len(cases)
        lines = luajit_decisions(script, compiled_suites[0][suite.name], library, tmp_path / f"{suite.name}.txt", cases)
        decisions = [line[1:] for line in lines if line[0] == "D"]
        assert len(decisions) == len(cases), suite.name
        for case, (action, status, location, provider, region, prefix, asn, route, headers) in zip(cases, decisions):
            obs = Observation(status=int(status), action=action,
                              location=bytes.fromhex(location).decode("latin-1") if action == "redirect" else None,
                              headers=[tuple(bytes.fromhex(x).decode("latin-1") for x in h.split("="))
                                       for h in headers.split(",") if h],
                              explain={"action": action, "provider": provider, "region": region, "prefix": prefix,
                                       "asn": asn, "route": route})
            verdict = judge(obs, "decision", {}, *case.expectations_for(frozenset({"library", "lua"})))
            problems += [f"{case.id}: {p}" for p in verdict.problems]
    assert decided >= 150, f"only {decided} cases decided"
    assert not problems, "\n".join(problems)

    lines = luajit_decisions(script, snapshots["main"], library, tmp_path / "none.txt", [], lookups=True)
    lookups = {line[1]: line[2] for line in lines if line[0] == "L"}
    assert lookups == {"192.0.2.10": "aws", "::ffff:192.0.2.10": "aws", "01.2.3.4": "-",
                       "127.1": "-", "fe80::1%eth0": "-", "2001:db8:b::1": "gcp",
                       "10.0.0.1": "-", "": "-"}
    [missing] = [line for line in lines if line[0] == "M"]
    assert missing[1] == "nil" and ".missing" in missing[2]
    [providers] = [line for line in lines if line[0] == "P"]
    assert {"aws", "gcp", "examplecloud"} <= set(providers[1].split(","))
