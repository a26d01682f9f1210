"""What a backend answered (an Observation), what its protocol should have answered for an
expected decision (a profile's projection), and the comparison of the two."""

from __future__ import annotations

from dataclasses import dataclass, field

from .suite import EXPLAIN_FIELDS, REJECT_STATUSES, Expect, normalize_explain, show


@dataclass
class Observation:
    """A backend's answer. Library backends fill `action`; HTTP backends fill the wire fields and,
    when they explain decisions (debug headers), `explain` (including `action`)."""

    status: int = 0
    location: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    origin: bool | None = None            # the request reached the origin (hosts with an origin)
    action: str | None = None             # decision-level action (library backends, explain headers)
    explain: dict[str, str] | None = None
    error: str | None = None              # no answer at all (connection refused/reset, crash)
    refused: bool = False                 # the host closed or answered without HTTP/1.x: a protocol-level refusal
    seconds: float = 0.0                  # latency (decision time for library backends)

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def describe(self) -> str:
        if self.error:
            return f"error: {self.error}"
        if self.action is not None and self.status == 0 and self.origin is None and self.action == "pass":
            return "pass"
        parts = []
        if self.origin:
            parts.append("origin")
        parts.append(str(self.status) if self.status else (self.action or "?"))
        if self.location is not None:
            parts.append(f"→ {show(self.location.encode('latin-1', 'replace'), 200)}")
        if self.explain and self.explain.get("action"):
            parts.append(f"[{self.explain['action']}]")
        return " ".join(parts)

    def decision_like(self) -> dict:
        """A compact dict for reports."""
        out = {"status": self.status, "location": self.location}
        if self.origin is not None:
            out["origin"] = self.origin
        if self.action is not None:
            out["action"] = self.action
        if self.explain:
            out["explain"] = self.explain
        if self.error:
            out["error"] = self.error
        return out


@dataclass
class WireExpect:
    """An expected decision as one protocol shows it."""

    reject: bool = False
    status: int | None = None              # None: not checked
    location: str | None = None            # checked when `check_location`
    check_location: bool = True
    origin: bool | None = None             # None: not checked
    headers: dict[str, str] = field(default_factory=dict)
    action: str | None = None              # compared with the decision action when the backend reports it


PROFILES = ("decision", "origin", "auth-proxy", "ext-authz", "forward-auth", "auth-request", "standalone", "generic")


def project(expect: Expect, profile: str, options: dict | None = None) -> WireExpect:
    """How `expect` appears in a backend speaking `profile` (see docs/conformance.md, 'Profiles')."""
    options = options or {}
    a, s = expect.action, expect.status
    if a == "reject":
        return WireExpect(reject=True)
    if a == "host":
        return WireExpect(status=s, location=None, origin=False if profile in ("origin", "auth-proxy") else None)
    ok2xx = a == "respond" and 200 <= s < 300
    if profile == "decision":
        return WireExpect(status=s if a != "pass" else 0, location=expect.location if a == "redirect" else None,
                          headers=expect.headers if a == "respond" else {}, action=a)
    if profile == "origin":
        if a == "pass":
            return WireExpect(origin=True, location=None, action=a)
        if a == "redirect":
            return WireExpect(status=s, location=expect.location, origin=False, action=a)
        return WireExpect(status=s, location=None, origin=False, headers=expect.headers, action=a)
    if profile == "auth-proxy":
        # A proxy asking an auth service cannot produce a 2xx answer itself: it lets the request
        # through to the origin (the sidecar answers 200 for a 2xx route).
        if a == "pass" or ok2xx:
            return WireExpect(origin=True, location=None)
        if a == "redirect":
            return WireExpect(status=s, location=expect.location, origin=False)
        return WireExpect(status=s, location=None, origin=False)
    if profile in ("ext-authz", "forward-auth"):
        if a == "pass":
            return WireExpect(status=200, location=None, action=a)
        if a == "redirect":
            return WireExpect(status=s, location=expect.location, action=a)
        return WireExpect(status=200 if ok2xx else s, location=None, headers=expect.headers, action=a)
    if profile == "auth-request":
        if a == "pass":
            return WireExpect(status=200, location=None, action=a)
        if a == "redirect":
            return WireExpect(status=401, location=expect.location, headers={"X-Redirector-Status": str(s)}, action=a)
        if ok2xx:
            return WireExpect(status=200, location=None, headers=expect.headers, action=a)
        return WireExpect(status=401, location=None, headers={**expect.headers, "X-Redirector-Status": str(s)}, action=a)
    if profile == "standalone":
        if a == "pass":
            return WireExpect(status=int(options.get("pass_status", 404)), location=None, action=a)
        if a == "redirect":
            return WireExpect(status=s, location=expect.location, action=a)
        return WireExpect(status=s, location=None, headers=expect.headers, action=a)
    if profile == "generic":
        if a == "pass":
            statuses = options.get("pass_status")
            return WireExpect(status=int(statuses) if statuses else None, location=None,
                              origin=True if options.get("origin_header") else None)
        if a == "redirect":
            return WireExpect(status=s, location=expect.location, origin=False if options.get("origin_header") else None)
        return WireExpect(status=s, location=None, headers=expect.headers)
    raise ValueError(f"unknown profile {profile}")


def wire_problems(obs: Observation, want: WireExpect) -> list[str]:
    """How an observation differs from a projected expectation (empty: it matches)."""
    if want.reject and obs.error and obs.refused:
        return []
    if obs.error:
        return [f"no answer: {obs.error}"]
    if want.reject:
        problems = []
        if obs.status not in REJECT_STATUSES:
            problems.append(f"status {obs.status or obs.action}, want a rejection ({'/'.join(map(str, sorted(REJECT_STATUSES)))})")
        if obs.location is not None:
            problems.append(f"Location {obs.location!r} on a rejection")
        if obs.origin:
            problems.append("reached the origin, want a rejection")
        return problems
    problems = []
    if want.status is not None and obs.status != want.status:
        problems.append(f"status {obs.status}, want {want.status}")
    if want.check_location and obs.location != want.location:
        problems.append(f"Location {obs.location!r}, want {want.location!r}")
    if want.origin is not None and obs.origin is not None and obs.origin != want.origin:
        problems.append("reached the origin" if obs.origin else "did not reach the origin")
    for name, value in want.headers.items():
        got = obs.header(name)
        if got != value:
            problems.append(f"{name}: {got!r}, want {value!r}")
    reported = obs.action if obs.action is not None else (obs.explain or {}).get("action")
    if want.action is not None and reported is not None and reported != want.action:
        problems.append(f"action {reported}, want {want.action}")
    return problems


def explain_problems(obs: Observation, expect: Expect) -> list[str]:
    if not expect.explain or obs.explain is None or obs.error:
        return []
    got = normalize_explain(obs.explain)
    problems = []
    for key in EXPLAIN_FIELDS:
        if key in expect.explain and key in got and got[key] != expect.explain[key]:
            problems.append(f"explain {key}={got[key]!r}, want {expect.explain[key]!r}")
    return problems


@dataclass
class Verdict:
    ok: bool
    problems: list[str]
    matched: str = ""          # "", "variant: …" or "accepted: …"


def judge(obs: Observation, profile: str, options: dict, primary: Expect, alternatives, because: str) -> Verdict:
    """Pass when the observation matches the primary expectation (plus its explain fields), or one
    of the accepted alternatives."""
    problems = wire_problems(obs, project(primary, profile, options)) + explain_problems(obs, primary)
    if not problems:
        return Verdict(True, [], f"variant: {because}" if because else "")
    for alt in alternatives:
        if not wire_problems(obs, project(alt.expect, profile, options)) + explain_problems(obs, alt.expect):
            return Verdict(True, [], f"accepted: {alt.because}")
    return Verdict(False, problems)
