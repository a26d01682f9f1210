"""Differential mode: random and boundary client addresses from a real BGP table (Debian's pyasn
dump) and random paths and methods, sent through every backend. The in-process core is the
reference; an independent longest-prefix match (pytricia over the snapshot's exported prefix
list) checks the core's matcher. Each disagreement is shrunk to a minimal reproducible case and
printed as a suite case."""

from __future__ import annotations

import html
import ipaddress
import json
import random
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from testkit import paths
from testkit.data import read_pyasn
from testkit.http import KeepAliveClient, WireError
from testkit.snapshots import absolutize

from .backends.base import Context, HTTPBackend
from .backends.library import CoreBackend
from .check import Observation, judge
from .run import BackendInfo, compile_suite, log, make_backend
from .suite import CONFORMANCE_DIR, Expect, Request, Suite, show

POLICY = CONFORMANCE_DIR / "differential" / "policy.yaml"
KNOWN = CONFORMANCE_DIR / "differential" / "known.yaml"
PYASN = paths.PYASN_DATA / "ipasn_20140513.dat.gz"
CLOUD = paths.EXAMPLES / "data"
MAX_MINIMIZED = 8            # disagreements shrunk per backend (the rest are listed as they are)


# --------------------------------------------------------------------------- samples


def cloud_v6() -> list[ipaddress.IPv6Network]:
    out = []
    try:
        aws = json.loads((CLOUD / "aws-ip-ranges.json").read_text())
        out += [ipaddress.ip_network(e["ipv6_prefix"]) for e in aws.get("ipv6_prefixes", [])]
        gcp = json.loads((CLOUD / "gcp-cloud.json").read_text())
        out += [ipaddress.ip_network(e["ipv6Prefix"]) for e in gcp.get("prefixes", []) if "ipv6Prefix" in e]
    except (OSError, ValueError, KeyError):
        pass
    return out


EXTREMES = ["0.0.0.0", "255.255.255.255", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255", "::ffff:0.0.0.0", "1.0.0.0", "223.255.255.255", "10.0.0.1"]

SEGMENT = "abcdefghijklmnopqrstuvwxyz0123456789-_."
QUERY = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/?"


def address_in(net, rng: random.Random, where: str) -> str:
    first, last = int(net.network_address), int(net.broadcast_address)
    cls = ipaddress.IPv4Address if net.version == 4 else ipaddress.IPv6Address
    top = 2 ** (32 if net.version == 4 else 128) - 1
    if where == "first":
        value = first
    elif where == "last":
        value = last
    elif where == "before":
        value = max(0, first - 1)
    elif where == "after":
        value = min(top, last + 1)
    else:
        value = rng.randint(first, last)
    return str(cls(value))


def random_segment(rng: random.Random, low=1, high=12) -> str:
    return "".join(rng.choice(SEGMENT) for _ in range(rng.randint(low, high)))


def random_path(rng: random.Random) -> str:
    repo = "/".join(random_segment(rng) for _ in range(rng.randint(1, 3)))
    digest = "sha256:" + "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice([12, 64])))
    kind = rng.random()
    if kind < 0.30:
        path = f"/v2/{repo}/manifests/{random_segment(rng)}"
    elif kind < 0.50:
        path = f"/v2/{repo}/blobs/{digest}"
    elif kind < 0.55:
        path = f"/v2/{repo}/blobs/{random_segment(rng)}:{random_segment(rng)}"
    elif kind < 0.62:
        path = rng.choice(["/v2", "/v2/", "/v2/_catalog", f"/v2/{repo}/tags/list"])
    elif kind < 0.80:
        path = f"/{rng.choice(['binaries', 'releases'])}/{repo}/{random_segment(rng)}"
    elif kind < 0.90:
        path = "/" + "/".join(random_segment(rng) for _ in range(rng.randint(0, 3)))
    else:
        path = "/v2/" + "/".join(random_segment(rng) + rng.choice(["", "%2F", "%20", "%E2%82%AC", ";x=1", "@", ":"])
                                 for _ in range(rng.randint(1, 4)))
    if rng.random() < 0.3:
        path += "?" + "".join(rng.choice(QUERY) for _ in range(rng.randint(0, 24)))
    return path


METHODS = [("GET", 70), ("HEAD", 15), ("POST", 5), ("PUT", 3), ("DELETE", 3), ("OPTIONS", 2), ("PATCH", 2)]


def generate(count: int, seed: int, table) -> list[Request]:
    rng = random.Random(seed)
    v6 = cloud_v6()
    methods = [m for m, w in METHODS for _ in range(w)]
    samples: list[Request] = []
    for i in range(count):
        if i < len(EXTREMES):
            client = EXTREMES[i]
        else:
            r = rng.random()
            if r < 0.85 or not v6:
                net = rng.choice(table)
                where = rng.choice(["inside", "inside", "first", "last", "before", "after"])
                client = address_in(net, rng, where)
                if net.version == 4 and rng.random() < 0.06:
                    client = "::ffff:" + client
            else:
                net = rng.choice(v6)
                client = address_in(net, rng, rng.choice(["inside", "first", "last", "before", "after"]))
        samples.append(Request(method=rng.choice(methods).encode(), target=random_path(rng).encode(),
                               client=client.encode()))
    return samples


# --------------------------------------------------------------------------- results


@dataclass
class Disagreement:
    backend: str
    request: Request
    reference: Observation
    observed: Observation
    problems: list[str]
    minimized: Request | None = None
    min_reference: Observation | None = None
    min_observed: Observation | None = None
    known: str = ""                    # the documented reason, when it is a known host difference

    def case_yaml(self) -> str:
        req = self.minimized or self.request
        ref = self.min_reference or self.reference
        action = ref.action or "pass"
        expect: dict = {"action": action}
        if action != "pass":
            expect["status"] = ref.status
        if action == "redirect":
            expect["location"] = ref.location
        if ref.explain:
            expect["explain"] = {k: v for k, v in ref.explain.items() if k in ("provider", "region", "prefix") and v}
        item = {"name": f"differential: {self.backend} disagrees",
                "request": {"client": req.client.decode("latin-1"), "method": req.method.decode("latin-1"),
                            "path": req.target.decode("latin-1")},
                "expect": expect}
        text = yaml.safe_dump([item], sort_keys=False, allow_unicode=True, width=200)
        return "# expect: the core's answer - check it by hand against the data before adding the case\n" + text


@dataclass
class DiffResult:
    policy: Path
    seed: int
    count: int
    backends: list[str]
    total_requests: int = 0
    per_backend: dict[str, dict] = field(default_factory=dict)   # name → {requests, agree, disagree, known, seconds}
    disagreements: list[Disagreement] = field(default_factory=list)
    known: list[Disagreement] = field(default_factory=list)
    oracle: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def summary_lines(self) -> list[str]:
        lines = [f"DIFFERENTIAL: {self.count} requests (seed {self.seed}) × {len(self.per_backend)} backends = "
                 f"{self.total_requests} requests in {self.seconds:.0f}s; policy {self.policy.name} "
                 f"(Debian pyasn ipasn_20140513: {self.oracle.get('table_prefixes', '?')} prefixes)"]
        if self.oracle:
            lines.append(f"  core vs independent LPM (pytricia over {self.oracle.get('prefixes', '?')} exported prefixes): "
                         f"{self.oracle.get('agree', 0)}/{self.oracle.get('checked', 0)} agree")
        for name, st in self.per_backend.items():
            lines.append(f"  {name:22s} {st['agree']:6d}/{st['requests']:<6d} agree with the core"
                         + (f", {st['known']} known host differences" if st.get("known") else "")
                         + (f", {st['disagree']} DISAGREE" if st.get("disagree") else ""))
        for name, why in self.missing.items():
            lines.append(f"  {name}: prerequisite missing: {'; '.join(why)}")
        for e in self.errors:
            lines.append(f"  error: {e[:500]}")
        if self.known:
            lines.append(f"  known host differences ({len(self.known)}):")
            seen = set()
            for d in self.known:
                key = (d.backend, d.known)
                if key not in seen:
                    seen.add(key)
                    lines.append(f"    {d.backend}: client {d.request.client.decode()} - {d.known}")
        if self.disagreements:
            lines.append(f"  DISAGREEMENTS ({len(self.disagreements)}), minimal cases:")
            for d in self.disagreements[:40]:
                req = d.minimized or d.request
                lines.append(f"  - {d.backend}: {req.describe()}")
                lines.append(f"      core:    {(d.min_reference or d.reference).describe()}")
                lines.append(f"      backend: {(d.min_observed or d.observed).describe()}  ({'; '.join(d.problems)[:300]})")
                if d.minimized is not None:
                    lines += ["      " + line for line in d.case_yaml().splitlines()]
        return lines

    def html(self) -> str:
        out = [f"<p>{self.count} requests per backend (seed {self.seed}), {self.total_requests} in all, "
               f"{self.seconds:.0f} s; policy <code>{html.escape(str(self.policy.relative_to(paths.REPO)) if self.policy.is_relative_to(paths.REPO) else str(self.policy))}</code>. "
               "Addresses: random prefixes of Debian's pyasn table (inside, first, last, one before, one after), "
               "IPv4-mapped forms, IPv6 cloud ranges and the ends of both address spaces. The in-process core is the "
               "reference; its matcher is checked against pytricia over the snapshot's exported prefixes.</p>"]
        if self.oracle:
            out.append(f"<p>Core vs independent LPM: {self.oracle.get('agree', 0)}/{self.oracle.get('checked', 0)} agree "
                       f"({self.oracle.get('prefixes', '?')} prefixes).</p>")
        out.append("<table><tr><th>backend</th><th>requests</th><th>agree</th><th>known differences</th>"
                   "<th>disagree</th><th>seconds</th></tr>")
        for name, st in self.per_backend.items():
            out.append(f"<tr><td>{html.escape(name)}</td><td class='num'>{st['requests']}</td><td class='num'>{st['agree']}</td>"
                       f"<td class='num'>{st.get('known', 0)}</td><td class='num'>{st.get('disagree', 0)}</td>"
                       f"<td class='num'>{st.get('seconds', 0):.1f}</td></tr>")
        out.append("</table>")
        if self.missing:
            out.append("<ul>" + "".join(f"<li>{html.escape(n)}: missing {html.escape('; '.join(w))}</li>"
                                        for n, w in self.missing.items()) + "</ul>")
        if self.known:
            out.append("<h3>Known host differences</h3><table><tr><th>backend</th><th>request</th><th>core</th>"
                       "<th>backend</th><th>why</th></tr>")
            for d in self.known:
                out.append(f"<tr><td>{html.escape(d.backend)}</td><td><code>{html.escape(d.request.describe())}</code></td>"
                           f"<td>{html.escape(d.reference.describe())}</td><td>{html.escape(d.observed.describe())}</td>"
                           f"<td>{html.escape(d.known)}</td></tr>")
            out.append("</table>")
        out.append("<h3>Disagreements</h3>")
        if not self.disagreements:
            out.append("<p class='ok'>None.</p>")
        for d in self.disagreements:
            req = d.minimized or d.request
            out.append(f"<p><b>{html.escape(d.backend)}</b>: <code>{html.escape(req.describe())}</code><br>"
                       f"core: {html.escape((d.min_reference or d.reference).describe())}<br>"
                       f"backend: {html.escape((d.min_observed or d.observed).describe())}<br>"
                       f"{html.escape('; '.join(d.problems))}</p><pre>{html.escape(d.case_yaml())}</pre>")
        if self.errors:
            out.append("<h3>Errors</h3><ul>" + "".join(f"<li><pre>{html.escape(e)}</pre></li>" for e in self.errors) + "</ul>")
        return "\n".join(out)

    def as_json(self) -> dict:
        def d2j(d: Disagreement) -> dict:
            req = d.minimized or d.request
            return {"backend": d.backend, "request": req.describe(), "original": d.request.describe(),
                    "core": (d.min_reference or d.reference).decision_like(),
                    "observed": (d.min_observed or d.observed).decision_like(), "problems": d.problems,
                    "known": d.known}
        return {"policy": str(self.policy), "seed": self.seed, "count": self.count, "total_requests": self.total_requests,
                "per_backend": self.per_backend, "oracle": self.oracle, "errors": self.errors,
                "missing": self.missing, "disagreements": [d2j(d) for d in self.disagreements],
                "known": [d2j(d) for d in self.known]}


# --------------------------------------------------------------------------- the run


def expect_of(obs: Observation) -> Expect:
    action = obs.action or "pass"
    return Expect(action=action, status=obs.status if action != "pass" else 0,
                  location=obs.location if action == "redirect" else None,
                  headers=dict(obs.headers) if action == "respond" else {})


class FastSender:
    """Sends differential requests over one keep-alive connection (HTTP backends)."""

    def __init__(self, backend):
        self.backend = backend
        self.client = KeepAliveClient(backend.port, timeout=backend.ctx.timeout) if isinstance(backend, HTTPBackend) \
            and backend.name != "http" else None

    def send(self, request: Request) -> Observation:
        if self.client is None:
            return self.backend.send(request)
        try:
            response = self.client.send(self.backend.wire_request(request))
        except (WireError, OSError) as e:
            return Observation(error=str(e))
        return self.backend.observe(response)

    def close(self):
        if self.client is not None:
            self.client.close()


def oracle_check(snapshot: Path, samples: list[Request], reference: list[Observation], result: DiffResult) -> None:
    """The core's matched prefix and provider against pytricia over `redirector export prefixes`."""
    try:
        import pytricia
    except ImportError:
        result.oracle["skipped"] = "pytricia is not installed (pip install pytricia)"
        return
    proc = subprocess.run([str(paths.CLI), "export", "prefixes", "--snapshot", str(snapshot)], capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        result.errors.append(f"export prefixes failed: {proc.stderr[-500:]}")
        return
    t4, t6 = pytricia.PyTricia(32), pytricia.PyTricia(128)
    n = 0
    for line in proc.stdout.splitlines()[1:]:
        parts = line.split(",")
        if len(parts) < 2:
            continue
        prefix, provider = parts[0], parts[1]
        (t6 if ":" in prefix else t4)[prefix] = (prefix, provider)
        n += 1
    agree = checked = 0
    for req, ref in zip(samples, reference):
        try:
            ip = ipaddress.ip_address(req.client.decode())
        except ValueError:
            continue
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        table = t4 if ip.version == 4 else t6
        try:
            want = table[str(ip)]
        except KeyError:
            want = ("", "")
        got = ((ref.explain or {}).get("prefix", ""), (ref.explain or {}).get("provider", ""))
        checked += 1
        if got == want:
            agree += 1
        elif len(result.disagreements) < 200:
            result.disagreements.append(Disagreement(
                "core (vs pytricia)", req, Observation(action="pass", explain={"prefix": want[0], "provider": want[1]}),
                ref, [f"core matched {got[0] or '-'} ({got[1] or '-'}), pytricia {want[0] or '-'} ({want[1] or '-'})"]))
    result.oracle.update({"prefixes": n, "checked": checked, "agree": agree})


def load_known() -> list[dict]:
    try:
        return yaml.safe_load(KNOWN.read_text()) or []
    except OSError:
        return []


def known_reason(known: list[dict], traits: frozenset[str], request: Request) -> str:
    """The documented reason when a disagreement matches an entry of differential/known.yaml: the
    backend has the entry's traits and the request has the entry's client or query bytes."""
    _, _, query = request.target.partition(b"?")
    for entry in known:
        if not frozenset(entry.get("when", [])) <= traits:
            continue
        clients = entry.get("clients")
        if clients is not None and request.client.decode("latin-1") not in clients:
            continue
        needles = entry.get("query_contains")
        if needles is not None and not any(n.encode("latin-1") in query for n in needles):
            continue
        return f"{entry.get('because', '').strip()} (see {entry.get('see', '-')})"
    return ""


def minimize(backend_send, core_send, traits, profile, options, request: Request, budget: int = 60):
    """Shrinks `request` while the backend still disagrees with the core: method, query, path."""
    def disagrees(r: Request):
        ref = core_send(r)
        obs = backend_send(r)
        v = judge(obs, profile, options, expect_of(ref), [], "")
        return (not v.ok), ref, obs

    best = request
    ok, ref, obs = disagrees(best)
    if not ok:
        return None, None, None
    tries = 0

    def attempt(candidate: Request):
        nonlocal best, ref, obs, tries
        if tries >= budget:
            return False
        tries += 1
        still, r2, o2 = disagrees(candidate)
        if still:
            best, ref, obs = candidate, r2, o2
        return still

    if best.method != b"GET":
        attempt(Request(method=b"GET", target=best.target, client=best.client))
    if b"?" in best.target:
        attempt(Request(method=best.method, target=best.target.split(b"?", 1)[0], client=best.client))
    changed = True
    while changed and tries < budget:
        changed = False
        segments = best.target.split(b"/")
        for i in range(len(segments) - 1, 0, -1):
            if len(segments) <= 2:
                break
            candidate = b"/".join(segments[:i] + segments[i + 1:]) or b"/"
            if candidate != best.target and attempt(Request(method=best.method, target=candidate, client=best.client)):
                changed = True
                break
        if not changed:
            segments = best.target.split(b"/")
            for i, seg in enumerate(segments):
                if len(seg) > 1 and b":" not in seg:
                    shorter = segments[:i] + [seg[:1]] + segments[i + 1:]
                    if attempt(Request(method=best.method, target=b"/".join(shorter), client=best.client)):
                        changed = True
                        break
    return best, ref, obs


def run_differential(names: list[str], workdir: Path, settings: dict, count: int = 1000, seed: int = 1,
                     policy: Path | None = None, infos: dict[str, BackendInfo] | None = None,
                     timeout: float = 10.0) -> DiffResult:
    started = time.monotonic()
    policy = (policy or POLICY).resolve()
    result = DiffResult(policy=policy, seed=seed, count=count, backends=list(names))
    infos = infos if infos is not None else {}
    config = absolutize(yaml.safe_load(policy.read_text()), policy.parent)
    suite = Suite(name="differential", path=policy, description="", config=config, config_source=policy,
                  files={}, cases=[])
    if not PYASN.exists():
        result.errors.append(f"{PYASN} is missing (apt-get install python3-pyasn)")
        return result
    log(f"[conformance] differential: compiling {policy.name} (full pyasn table) …")
    try:
        snapshot = compile_suite(suite, workdir)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        result.errors.append(str(e))
        return result
    table = [network for network, _ in read_pyasn(PYASN)]
    result.oracle["table_prefixes"] = len(table)
    samples = generate(count, seed, table)
    known = load_known()

    core = CoreBackend()
    missing = core.missing()
    if missing:
        result.missing["core"] = missing
        result.errors.append("the core (reference) cannot run: " + "; ".join(missing))
        return result
    ctx = Context(suite=suite, snapshot=snapshot, workdir=workdir / "backends" / "differential", timeout=timeout)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    ctx.workdir.chmod(0o755)
    core.start(ctx)
    try:
        t0 = time.monotonic()
        reference = [core.send(r) for r in samples]
        result.per_backend["core"] = {"requests": len(samples), "agree": len(samples), "disagree": 0,
                                      "seconds": time.monotonic() - t0}
        result.total_requests += len(samples)
        info = infos.setdefault("core", BackendInfo("core", core.title, sorted(core.traits), core.profile))
        info.diff_latencies += [o.seconds for o in reference if not o.error]
        oracle_check(snapshot, samples, reference, result)
        stats = result.oracle
        log(f"[conformance] differential: core vs pytricia {stats.get('agree', 0)}/{stats.get('checked', 0)}")

        for name in names:
            if name == "core":
                continue
            backend = make_backend(name, settings)
            why = backend.missing()
            if why:
                result.missing[name] = why
                continue
            if any(backend.applicable(r, suite) for r in samples[:1]):
                continue
            t0 = time.monotonic()
            try:
                backend.start(ctx)
            except Exception as e:  # noqa: BLE001
                result.errors.append(f"{name} did not start: {type(e).__name__}: {e}"[:2000])
                try:
                    backend.stop()
                except Exception:  # noqa: BLE001
                    pass
                continue
            sender = FastSender(backend)
            st = {"requests": 0, "agree": 0, "disagree": 0, "known": 0}
            info = infos.setdefault(name, BackendInfo(name, backend.title, sorted(backend.traits), backend.profile))
            found: list[Disagreement] = []
            try:
                for req, ref in zip(samples, reference):
                    obs = sender.send(req)
                    st["requests"] += 1
                    if not obs.error:
                        info.diff_latencies.append(obs.seconds)
                    verdict = judge(obs, backend.profile, backend.options, expect_of(ref), [], "")
                    if verdict.ok:
                        st["agree"] += 1
                        continue
                    d = Disagreement(name, req, ref, obs, verdict.problems)
                    d.known = known_reason(known, backend.traits, req)
                    if d.known:
                        st["known"] += 1
                        result.known.append(d)
                    else:
                        st["disagree"] += 1
                        found.append(d)
                for d in found[:MAX_MINIMIZED]:
                    m, r2, o2 = minimize(sender.send, core.send, backend.traits, backend.profile, backend.options,
                                         d.request)
                    if m is not None:
                        d.minimized, d.min_reference, d.min_observed = m, r2, o2
                        d.problems = judge(o2, backend.profile, backend.options, expect_of(r2), [], "").problems
                result.disagreements += found
            finally:
                sender.close()
                backend.stop()
                for p in backend.problems():
                    result.errors.append(f"{name}: {p}")
            st["seconds"] = time.monotonic() - t0
            result.per_backend[name] = st
            result.total_requests += st["requests"]
            log(f"[conformance] differential: {name:22s} {st['agree']}/{st['requests']} agree"
                f"{', ' + str(st['known']) + ' known' if st['known'] else ''}"
                f"{', ' + str(st['disagree']) + ' DISAGREE' if st['disagree'] else ''} ({st['seconds']:.1f}s)")
    finally:
        core.stop()
    result.seconds = time.monotonic() - started
    return result


__all__ = ["run_differential", "DiffResult", "generate", "show"]
