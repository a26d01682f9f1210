"""ABI 3 through ctypes: decisions with a health state loaded from files written by the
independent encoder in health_state.py, refused files (truncated, bit-flipped, future version,
other pools, stale, future-dated, hostile times) answered with RDR_EHEALTH, the reason, and
decisions as if every member were up; request headers; rdr_format_skipped.

Run: scripts/build.sh && python3 -m pytest Tests/Integration/test_health_abi.py
"""

from __future__ import annotations

import ctypes

import pytest

import health_state as hs
from testkit import abi
from testkit.snapshots import compile_snapshot

MANIFEST = b"/v2/library/nginx/manifests/1.25"


@pytest.fixture(scope="module")
def snapshot(cli, tmp_path_factory):
    work = tmp_path_factory.mktemp("health-abi")
    return compile_snapshot(hs.write_policy(work), work / "health.rdb")


@pytest.fixture(scope="module")
def table(library, snapshot):
    t = abi.Library(library).open(snapshot)
    yield t
    t.close()


@pytest.fixture
def health(table):
    h = table.health()
    yield h
    h.free()


def decide(table, health=None, path=MANIFEST, headers=None) -> abi.Decided:
    d = table.decide(hs.CLIENT.encode(), b"GET", path, health=health, headers=headers)
    assert d.rc == abi.RDR_OK
    return d


def member(d: abi.Decided) -> str:
    return d.decision.target_host.decode()


def test_all_up_decisions_name_pool_member_and_step(table, health):
    assert table.header_names() == [hs.PIN_HEADER]
    assert (health.expires, health.down_count) == (0, 0)
    for h in (None, health):  # no health object, and one with nothing loaded: the same
        d = decide(table, h)
        assert d.action == "redirect" and d.decision.status == 302
        assert member(d) in hs.MEMBERS and d.location == member(d).encode() + MANIFEST
        assert d.decision.pool >= 0 and d.decision.pool_name == b"eu"
        assert d.decision.member == hs.MEMBERS.index(member(d))
        assert (d.decision.step, d.decision.step_name) == (abi.RDR_STEP_PRIMARY, b"primary")
    # The rendezvous hash spreads objects over all three members, each object sticking to one.
    chosen = {member(decide(table, health, f"/v2/x/blobs/sha256:{i:04}".encode())) for i in range(60)}
    assert chosen == set(hs.MEMBERS)
    # Not a redirect: no pool, member or step.
    d = table.decide(b"10.9.9.9", b"GET", MANIFEST)
    assert (d.action, d.decision.pool, d.decision.member, d.decision.step) == ("pass", -1, -1, abi.RDR_STEP_NONE)
    assert (d.decision.pool_name, d.decision.step_name) == (b"", b"")


def test_a_member_down_moves_only_its_objects(table, health):
    paths = [f"/v2/x/blobs/sha256:{i:04}".encode() for i in range(60)]
    before = {p: member(decide(table, health, p)) for p in paths}
    first = member(decide(table, health))
    slot = hs.MEMBERS.index(first)

    data = hs.state(down={slot})
    assert health.load(data) == (abi.RDR_OK, "")
    assert health.down_count == 1
    written = int.from_bytes(data[24:32], "little", signed=True)
    assert health.expires == written + 10_000

    d = decide(table, health)
    assert member(d) != first and member(d) in hs.MEMBERS
    assert d.decision.step_name == b"primary"  # another member of the same pool: nothing failed over
    rc, skipped = table.format_skipped(hs.CLIENT.encode(), b"GET", MANIFEST, health=health)
    assert rc == len(skipped.encode()) and f"{first}(eu):down" in skipped.split(" "), skipped
    # Without the health object the same request still goes to the down member.
    assert member(decide(table)) == first
    # Only the down member's objects moved.
    after = {p: member(decide(table, health, p)) for p in paths}
    assert all(after[p] == before[p] for p in paths if before[p] != first)
    assert all(after[p] != first for p in paths)

    # Every member down: the chain ends in pass.
    assert health.load(hs.state(down={0, 1, 2}))[0] == abi.RDR_OK
    d = decide(table, health)
    assert (d.action, d.decision.step, d.decision.step_name) == ("pass", abi.RDR_STEP_PASS, b"pass")
    rc, skipped = table.format_skipped(hs.CLIENT.encode(), b"GET", MANIFEST, health=health)
    assert sorted(skipped.split(" ")) == sorted(f"{url}(eu):down" for url in hs.MEMBERS)


def refused_files() -> list[tuple[str, bytes, str]]:
    """(what, bytes, the reason rdr_health_load gives)."""
    good = hs.state(down={0})
    flipped = bytearray(good)
    flipped[48] ^= 0x04  # inside the first record
    now = hs.now_ms()
    return [
        ("empty", b"", "truncated: 0 bytes"),
        ("truncated header", good[:47], "truncated: 47 bytes"),
        ("truncated records", good[:60], "checksum mismatch"),
        ("truncated checksum", good[:-1], "checksum mismatch"),
        ("bit flipped", bytes(flipped), "checksum mismatch"),
        ("bad magic", b"RDRSNAP\0" + good[8:], "bad magic"),
        ("future version", hs.state(down={0}, version=2), "format version 2, this build reads version 1"),
        ("other fingerprint", hs.state(down={0}, fingerprint_value=hs.fingerprint(health_path="/other")),
         "written for other pools"),
        ("other member count", hs.encode([hs.Record()] * 4, fingerprint_value=hs.fingerprint()), "written for other pools"),
        ("stale", hs.state(down={0}, written_ms=now - 60_000, stale_after_ms=10_000), "stale: written 60 s ago"),
        ("future dated", hs.state(down={0}, written_ms=now + 3_600_000), "in the future"),
        ("zero stale-after", hs.state(down={0}, stale_after_ms=0), "stale-after is 0 ms"),
        ("unknown state", hs.encode([hs.Record(state=7)] + [hs.Record()] * 2), "member 0 has state 7"),
        ("trailing bytes", hs.seal(good[:-8] + b"\0\0"), "bytes after its records"),
        ("written at the minimum time", hs.state(down={0}, written_ms=-(1 << 63), stale_after_ms=1), "not a possible time"),
        ("written at the maximum time", hs.state(down={0}, written_ms=(1 << 63) - 1), "not a possible time"),
    ]


# The files are made when each test runs: made at collection, they would all have gone stale by
# the time a long run reaches them (and be refused for that instead).
@pytest.mark.parametrize("what", [f[0] for f in refused_files()])
def test_refused_files_leave_every_member_up(table, health, what):
    data, reason = next((d, r) for w, d, r in refused_files() if w == what)
    all_up = member(decide(table))
    first = hs.MEMBERS.index(all_up)
    # A good state first (the decision's member down), so a refusal visibly resets it.
    assert health.load(hs.state(down={first}))[0] == abi.RDR_OK
    assert member(decide(table, health)) != all_up

    rc, message = health.load(data)
    assert rc == abi.RDR_EHEALTH, (what, message)
    assert reason in message, (what, message)
    assert (health.down_count, health.expires) == (0, 0)
    assert member(decide(table, health)) == all_up


def test_load_and_arguments_never_crash(table, health, library, snapshot):
    c = table.c
    err = ctypes.create_string_buffer(8)
    assert c.rdr_health_load(None, b"x", 1, 0, err, len(err)) == abi.RDR_EINVAL
    assert c.rdr_health_load(health.handle, None, 100, hs.now_ms(), err, len(err)) == abi.RDR_EHEALTH
    assert err.value == b"truncat"  # the reason, cut to the buffer
    assert c.rdr_health_load(health.handle, b"x", 1, hs.now_ms(), None, 0) == abi.RDR_EHEALTH
    for now in (-(1 << 63), 0, (1 << 63) - 1):
        assert c.rdr_health_load(health.handle, hs.state(), len(hs.state()), now, None, 0) == abi.RDR_EHEALTH
    assert c.rdr_health_expires(None) == 0 and c.rdr_health_down_count(None) == 0
    c.rdr_health_free(None)
    assert c.rdr_health_new(None) is None
    assert c.rdr_header_name_count(None) == 0 and c.rdr_header_name(table.handle, 1) is None
    assert c.rdr_header_name(table.handle, -1) is None

    # A health state belongs to its table: with another table's decisions it counts as NULL.
    other = abi.Library(library).open(snapshot)
    try:
        foreign = other.health()
        assert foreign.load(hs.state(down={0, 1, 2}))[0] == abi.RDR_OK
        assert decide(table, foreign).action == "redirect"
        assert decide(other, foreign).action == "pass"
        foreign.free()
    finally:
        other.close()

    # rdr_format_skipped: arguments and a buffer too small.
    req = abi.request(hs.CLIENT.encode(), b"GET", MANIFEST)
    buf = ctypes.create_string_buffer(4)
    assert c.rdr_format_skipped(None, ctypes.byref(req), buf, 4) == abi.RDR_EINVAL
    assert c.rdr_format_skipped(table.handle, None, buf, 4) == abi.RDR_EINVAL
    assert c.rdr_format_skipped(table.handle, ctypes.byref(req), None, 4) == abi.RDR_EINVAL
    assert c.rdr_format_skipped(table.handle, ctypes.byref(req), buf, 0) == abi.RDR_EINVAL
    assert c.rdr_format_skipped(table.handle, ctypes.byref(req), buf, 4) == abi.RDR_ENOSPC and buf.value == b""
    # Nothing skipped (a pass): the empty text.
    assert table.format_skipped(b"10.9.9.9", b"GET", MANIFEST) == (0, "")


def test_request_headers(table, health):
    pin = [(b"X-Mirror-Pin", b"origin")]
    assert decide(table).action == "redirect"
    d = decide(table, headers=pin)
    assert d.action == "pass" and d.decision.route_name == b"pinned"
    assert decide(table, headers=[(b"x-mirror-pin", b"origin")]).action == "pass"
    assert decide(table, headers=[(b"X-Mirror-Pin", b"Origin")]).action == "redirect"  # values are exact
    assert decide(table, headers=[(b"X-Mirror-Pinned", b"origin")]).action == "redirect"
    # More headers than RDR_MAX_HEADERS: the listed names are still found among them.
    noise = [(f"X-Noise-{i}".encode(), b"1") for i in range(abi.RDR_MAX_HEADERS * 2)]
    assert decide(table, headers=noise + pin).action == "pass"
    assert decide(table, headers=noise).action == "redirect"
    # NULL names and values, zero lengths: never a crash, never a match.
    odd = (abi.Header * 3)(abi.Header(None, 5, None, 5), abi.Header(b"x-mirror-pin", 0, b"origin", 6),
                           abi.Header(b"x-mirror-pin", 12, None, 0))
    req = abi.request(hs.CLIENT.encode(), b"GET", MANIFEST)
    req.headers, req.header_count = odd, 3
    out, buf = abi.Decision(), ctypes.create_string_buffer(256)
    assert table.c.rdr_decide(table.handle, ctypes.byref(req), ctypes.byref(out), buf, 256) == abi.RDR_OK
    assert out.action == abi.RDR_REDIRECT


def test_same_decisions_as_the_cli(cli, table, health, snapshot, tmp_path):
    """`redirector decide --health FILE` (Swift's explanation path) and rdr_decide +
    rdr_format_skipped agree on every combination of members down, for several objects."""
    import json
    from testkit.processes import run
    state = tmp_path / "health.state"
    problems = []
    for down in [set(), {0}, {1}, {2}, {0, 1}, {1, 2}, {0, 2}, {0, 1, 2}]:
        data = hs.state(down=down)
        state.write_bytes(data)
        assert health.load(data)[0] == abi.RDR_OK
        for path in ["/v2/a", "/v2/b/blobs/sha256:01", "/v2/c?x=1", MANIFEST.decode()]:
            cli_answer = json.loads(run([cli, "decide", "-s", snapshot, "--client", hs.CLIENT, "--health", state,
                                         "--json", "--", path]).stdout)
            d = decide(table, health, path.encode())
            _, skipped = table.format_skipped(hs.CLIENT.encode(), b"GET", path.encode(), health=health)
            mine = {"action": d.action, "location": d.location.decode() if d.location else None,
                    "step": d.decision.step_name.decode() or "-", "skipped": skipped.split(" ") if skipped else []}
            theirs = {"action": cli_answer["action"], "location": cli_answer.get("location"),
                      "step": cli_answer.get("step", "-"), "skipped": cli_answer.get("skipped", [])}
            if mine != theirs:
                problems.append(f"down {sorted(down)} {path}: ABI {mine}, CLI {theirs}")
    assert not problems, "\n".join(problems)


ALLOCATION_PROBE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "redirector.h"

/* Counts every allocation the library makes while `counting` (this program's allocator is the
   one the library's calls resolve to: -rdynamic). */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
static volatile long allocations;
static volatile int counting;
void *malloc(size_t n) { allocations += counting; return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { allocations += counting; return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { allocations += counting; return __libc_realloc(p, n); }
int posix_memalign(void **p, size_t a, size_t n) { allocations += counting; *p = __libc_memalign(a, n); return *p ? 0 : 12; }
void *aligned_alloc(size_t a, size_t n) { allocations += counting; return __libc_memalign(a, n); }
void *memalign(size_t a, size_t n) { allocations += counting; return __libc_memalign(a, n); }

int main(int argc, char **argv)
{
    char err[512], buf[512], *data;
    long size, i, decide_allocations;
    FILE *f;
    rdr_decision d;
    rdr_header h[2] = { { "X-Other", 7, "1", 1 }, { "X-Mirror-Pin", 12, "nope", 4 } };
    rdr_request req = { "192.0.2.10", 10, "GET", 3, "mirror.test", 11, "/v2/a", 5, h, 2, NULL };
    rdr_table *t = rdr_open(argv[1], err, sizeof(err));
    rdr_health *health = t ? rdr_health_new(t) : NULL;

    if (health == NULL || (f = fopen(argv[2], "rb")) == NULL) return 2;
    fseek(f, 0, SEEK_END); size = ftell(f); rewind(f);
    data = malloc(size);
    if (fread(data, 1, size, f) != (size_t) size) return 2;
    fclose(f);
    if (rdr_health_load(health, data, size, atoll(argv[3]), err, sizeof(err)) != RDR_OK) return 3;
    req.health = health;
    for (i = 0; i < 1000; i++) rdr_decide(t, &req, &d, buf, sizeof(buf));
    counting = 1;
    for (i = 0; i < 20000; i++) {
        req.path = (i & 1) ? "/v2/a" : "/v2/b/blobs/sha256:00";
        req.path_len = strlen(req.path);
        if (rdr_decide(t, &req, &d, buf, sizeof(buf)) != RDR_OK || d.action != RDR_REDIRECT) return 4;
    }
    decide_allocations = allocations;
    rdr_format_skipped(t, &req, buf, sizeof(buf));
    counting = 0;
    printf("%ld %ld\n", decide_allocations, allocations - decide_allocations);
    rdr_health_free(health);
    rdr_close(t);
    return 0;
}
"""


def test_decide_with_headers_and_health_allocates_nothing(library, snapshot, tmp_path):
    """rdr_decide with request headers and a loaded health state makes no allocation (the
    headers are converted on the stack); rdr_format_skipped, counted the same way, does."""
    from testkit.paths import HEADER
    from testkit.processes import run
    (tmp_path / "probe.c").write_text(ALLOCATION_PROBE)
    run(["gcc", "-O1", "-Wall", "-Werror", "-rdynamic", "-I", HEADER.parent, tmp_path / "probe.c",
         "-o", tmp_path / "probe", "-L", library.parent, "-lredirector", f"-Wl,-rpath,{library.parent}"])
    (tmp_path / "health.state").write_bytes(hs.state(down={0}))
    decide, skipped = map(int, run([tmp_path / "probe", snapshot, tmp_path / "health.state", hs.now_ms()]).stdout.split())
    assert decide == 0, f"{decide} allocations in 20000 decisions"
    assert skipped > 0, "the allocation counter saw nothing (is it interposed?)"
