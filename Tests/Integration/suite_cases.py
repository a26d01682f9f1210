"""The conformance suites' cases (Tests/Conformance/cases) in the integration tests: a backend's
whole-suite result, and the cases sent to the shipped nginx examples (examples/nginx,
examples/openresty), whose JSON access log must explain each decision."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pytest

from conformance import report
from conformance.backends.base import client_headers, source_of
from conformance.backends.nginx import NGINX_TRAITS
from conformance.check import Observation, Verdict, judge
from conformance.suite import Case, Expect, Suite
from testkit.http import WireError, WireRequest, WireResponse, send


def assert_backend_passes(run, backend: str) -> None:
    """Every case of every suite ran on `backend` (or is n/a for a documented reason) and passed;
    a backend whose prerequisites are missing is skipped (a failure under REDIRECTOR_REQUIRE_ALL)."""
    info = run.backends[backend]
    if info.missing:
        pytest.skip(f"{backend}: prerequisite missing: {'; '.join(info.missing)}")
    results = run.for_backend(backend)
    assert results, f"{backend}: no results"
    ran = [r for r in results if r.state in ("pass", "fail")]
    assert ran, f"{backend}: no case ran ({', '.join(sorted({r.detail for r in results}))[:500]})"
    assert not info.errors, f"{backend}: " + "\n".join(info.errors)
    bad = [r for r in results if r.state in ("fail", "error")]
    assert not bad, f"{backend}: {len(bad)} cases failed:\n" + "\n".join(
        f"- {r.case.id}: {report.clip(r.detail, 300)}\n    request:  {r.case.request.describe()}\n"
        f"    expected: {report.clip(r.expected)}\n    observed: {report.clip(r.observed)}" for r in bad[:30])


# --------------------------------------------------------------------------- the nginx examples

# The examples' own locations, tested by their own tests: /binaries/ composes its answer from
# set_redirector_target (307 with Cache-Control), /healthz is never redirected.
EXAMPLE_LOCATIONS = (b"/binaries/", b"/healthz")
EXAMPLE_TRAITS = {"module": frozenset(NGINX_TRAITS | {"nginx-module"}), "lua": frozenset(NGINX_TRAITS | {"lua"})}


def without_presence_checks(suites: list[Suite]) -> list[Suite]:
    """The suites whose routes check no mirror (the loader refuses verifying routes in a suite
    without `mirrors`): the examples have no presence-check location (a
    snapshot that verifies is refused without one) and plain LuaJIT makes no subrequests. The
    verifying suites run on every conformance backend and in test_presence.py."""
    return [s for s in suites if s.mirrors is None]


def example_carries(case: Case, suite: Suite, kind: str) -> bool:
    """Whether the example config can carry the case: it listens on 127.0.0.1 only, its own
    locations decide differently on purpose, and it reads no health state (every member up: the
    cases that need a member down are not for it; those with no file or an unusable one are)."""
    health = case.health
    return (":" not in source_of(case.request, suite) and not case.requires - EXAMPLE_TRAITS[kind]
            and not case.request.target.startswith(EXAMPLE_LOCATIONS)
            and (health is None or not health.down))


def always_decided(case: Case, kind: str) -> bool:
    """Whether every outcome the case allows the example is a decision (nginx then logs the
    request with the module's variables)."""
    primary, alternatives, _ = case.expectations_for(EXAMPLE_TRAITS[kind])
    return all(e.action in ("pass", "redirect", "respond") for e in [primary] + [a.expect for a in alternatives])


@dataclass
class Answer:
    """An example's answer to a case, judged against the case's expectation for its traits."""

    case: Case
    suite: Suite
    response: WireResponse | None
    verdict: Verdict
    expect: Expect | None        # the expectation met (primary or variant); None otherwise


def ask(port: int, suite: Suite, case: Case, kind: str) -> Answer:
    """Sends the case to the example on `port` as the harness sends it to an nginx (the client in
    X-Forwarded-For from the suite's trusted peer) and judges the answer ('origin' profile). Returns
    when nginx has closed the connection, so access-log lines come in the order of the requests."""
    request = case.request
    wire = WireRequest(request.method, request.target, [(b"Host", request.host)] + client_headers(request),
                       source_of(request, suite))
    primary, alternatives, because = case.expectations_for(EXAMPLE_TRAITS[kind])
    try:
        response = send(port, wire, until_close=True)
    except WireError as e:
        obs = Observation(error=str(e), refused=e.refused)
        return Answer(case, suite, None, judge(obs, "origin", {}, primary, alternatives, because), None)
    # The examples' origin answers "origin METHOD URI" without a marker header.
    obs = Observation(status=response.status, location=response.location, headers=response.headers,
                      origin=response.body.startswith(b"origin ") if request.method != b"HEAD" else None)
    verdict = judge(obs, "origin", {}, primary, alternatives, because)
    met = primary if verdict.ok and not verdict.matched.startswith("accepted") else None
    return Answer(case, suite, response, verdict, met)


def answer_problems(answer: Answer) -> list[str]:
    """The judge's problems, and the examples' own promises: a pass reaches the origin with the
    request target unchanged; a fixed answer has an empty body."""
    name, response, expect = answer.case.id, answer.response, answer.expect
    out = [f"{name}: {p}" for p in answer.verdict.problems]
    if expect is None or response is None:
        return out
    method, target = answer.case.request.method, answer.case.request.target
    if expect.action == "pass" and method != b"HEAD" and target.startswith(b"/"):
        want = b"origin " + method + b" " + target + b"\n"
        if response.body != want:
            out.append(f"{name}: body {response.body[:80]!r}, want the origin's {want[:80]!r}")
    if expect.action == "respond":
        if response.body:
            out.append(f"{name}: body {response.body[:80]!r}, want empty")
        if response.header("Content-Length") not in ("0", None):
            out.append(f"{name}: Content-Length {response.header('Content-Length')}, want 0")
    return out


def expected_client(answer: Answer) -> str | None:
    """$remote_addr after realip: the case's explained client, else its client address when that is
    a well-formed address (X-Forwarded-For from the trusted peer), else the peer; None when a
    variant for realip changes the resolution without saying to what."""
    expect, request = answer.expect, answer.case.request
    if "client" in expect.explain:
        return expect.explain["client"]
    if answer.verdict.matched:
        return None
    if request.client is None:
        return source_of(request, answer.suite) if not request.forwards else None
    try:
        text = request.client.decode("ascii")
        ipaddress.ip_address(text)
        return text if "%" not in text else source_of(request, answer.suite)
    except (UnicodeDecodeError, ValueError):
        return source_of(request, answer.suite)


def log_problems(answer: Answer, entry: dict) -> list[str]:
    """What is wrong with the access-log entry of a decided case: the module's variables must say
    what the answer did and why (the case's explain fields)."""
    expect, name = answer.expect, answer.case.id
    if expect is None:
        return []
    location = expect.location if expect.action == "redirect" else ""
    # The examples' log formats have no pool/step/skipped (the harness's own config checks those).
    want = {"action": expect.action, "status": answer.response.status, "location": location, "target": location,
            **{k: v for k, v in expect.explain.items()
               if k != "client" and (k in entry or k not in ("pool", "step", "skipped"))}}
    out = [f"{name}: log {key}={entry.get(key)!r}, want {value!r}" for key, value in want.items()
           if entry.get(key) != value]
    client = expected_client(answer)
    if client is not None and _address(entry.get("client")) != _address(client):
        out.append(f"{name}: log client={entry.get('client')!r}, want {client!r}")
    return out


def _address(text):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return text
