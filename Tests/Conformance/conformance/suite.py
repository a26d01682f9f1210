"""Case suites: loading, the request and expectation model, and how an expectation reads in each
backend's protocol. The format is documented in docs/conformance.md."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from testkit.snapshots import absolutize

from .presence import ContentsError, Mirrors

HERE = Path(__file__).resolve().parent
CONFORMANCE_DIR = HERE.parent
REPO = CONFORMANCE_DIR.parents[1]
CASES_DIR = CONFORMANCE_DIR / "cases"

# Statuses with which an HTTP host refuses a request before any decision (bad request line,
# header too large, URI too long, payload too large, a request line without an HTTP/1.1 version
# that Envoy answers with 426 Upgrade Required).
REJECT_STATUSES = frozenset({400, 413, 414, 426, 431, 494})
# pass/redirect/respond: the decision. reject: the host refused the request before deciding.
# host: the host answered by itself with `status` (no decision, no origin), e.g. OPTIONS *.
ACTIONS = ("pass", "redirect", "respond", "reject", "host")
EXPLAIN_FIELDS = ("provider", "region", "prefix", "asn", "route", "client", "pool", "step", "skipped")
# Unusable health state files a case can name (`health: {file: KIND}`): each must decide as all up.
HEALTH_FILES = ("stale", "corrupt", "other")


class SuiteError(Exception):
    """A suite file that does not follow the format; the message names the file and the place."""


def to_bytes(value) -> bytes:
    """Request text → bytes: characters up to U+00FF are that byte (YAML "\\xNN" is byte NN),
    others are their UTF-8 bytes. A dict {repeat, times, prefix, suffix} builds long values."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {"repeat", "times", "prefix", "suffix"}
        if unknown or "repeat" not in value:
            raise SuiteError(f"a generated value needs 'repeat' (and 'times', 'prefix', 'suffix'): {value}")
        return (to_bytes(value.get("prefix", "")) + to_bytes(value["repeat"]) * int(value.get("times", 1))
                + to_bytes(value.get("suffix", "")))
    text = str(value)
    out = bytearray()
    for ch in text:
        code = ord(ch)
        out += bytes([code]) if code <= 0xFF else ch.encode("utf-8")
    return bytes(out)


def show(data: bytes, limit: int = 120) -> str:
    """Printable form of request bytes (escapes for control and non-ASCII bytes)."""
    text = "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in data[:limit])
    return text + (f"…(+{len(data) - limit} bytes)" if len(data) > limit else "")


# --------------------------------------------------------------------------- requests


@dataclass
class Request:
    """A request as a case describes it.

    `client` is an already-resolved client address: library backends decide with it directly,
    HTTP backends receive it as `X-Forwarded-For: <client>` from the suite's trusted peer.
    `peer`/`xff`/`headers` describe the connection and its forwarding headers explicitly.
    """

    method: bytes = b"GET"
    target: bytes = b"/"
    host: bytes = b"mirror.test"
    client: bytes | None = None
    peer: str | None = None
    xff: list[bytes] = field(default_factory=list)           # one entry per X-Forwarded-For header
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def forwards(self) -> bool:
        """Whether headers carry client information (the host must resolve the client)."""
        names = {n.lower() for n, _ in self.headers}
        return bool(self.xff) or bool(names & {b"x-real-ip", b"x-envoy-external-address", b"x-forwarded-for"})

    def header_value(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def describe(self) -> str:
        parts = [f"{show(self.method)} {show(self.target)}"]
        if self.client is not None:
            parts.append(f"client={show(self.client)}")
        if self.peer:
            parts.append(f"peer={self.peer}")
        for v in self.xff:
            parts.append(f"xff={show(v, 60)}")
        for k, v in self.headers:
            parts.append(f"{show(k)}={show(v, 60)}")
        return " ".join(parts)


def parse_request(data: dict, defaults: dict, where: str) -> Request:
    merged = {**defaults, **(data or {})}
    known = {"method", "path", "host", "client", "peer", "xff", "headers"}
    unknown = set(merged) - known
    if unknown:
        raise SuiteError(f"{where}: unknown request keys {sorted(unknown)} (known: {sorted(known)})")
    if "path" not in merged:
        raise SuiteError(f"{where}: request.path is required")
    req = Request(method=to_bytes(merged.get("method", "GET")), target=to_bytes(merged["path"]),
                  host=to_bytes(merged.get("host", "mirror.test")))
    if merged.get("client") is not None:
        req.client = to_bytes(merged["client"])
    if merged.get("peer") is not None:
        req.peer = str(merged["peer"])
    xff = merged.get("xff")
    if xff is not None:
        req.xff = [to_bytes(v) for v in (xff if isinstance(xff, list) else [xff])]
    headers = merged.get("headers") or []
    items = headers.items() if isinstance(headers, dict) else [tuple(h) for h in headers]
    req.headers = [(to_bytes(k), to_bytes(v)) for k, v in items]
    if req.client is not None and (req.peer or req.forwards):
        raise SuiteError(f"{where}: give either client, or peer/xff/headers, not both")
    return req


# --------------------------------------------------------------------------- expectations


@dataclass
class Expect:
    """An outcome in the decision contract's terms."""

    action: str                              # pass | redirect | respond | reject
    status: int = 0
    location: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    explain: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        if self.action == "pass":
            text = "pass"
        elif self.action == "reject":
            text = "reject (4xx before deciding)"
        elif self.action == "host":
            text = f"the host's own {self.status}"
        elif self.action == "redirect":
            text = f"{self.status} → {show((self.location or '').encode('latin-1', 'replace'), 200)}"
        else:
            text = f"respond {self.status}" + "".join(f" {k}: {v}" for k, v in self.headers.items())
        return text

    def as_yaml(self) -> dict:
        out: dict = {"action": self.action}
        if self.action in ("redirect", "respond", "host"):
            out["status"] = self.status
        if self.location is not None:
            out["location"] = self.location
        if self.headers:
            out["headers"] = dict(self.headers)
        if self.explain:
            out["explain"] = dict(self.explain)
        return out


def normalize_explain(values: dict) -> dict[str, str]:
    """Explain fields as comparable text: absent, '-', 0 (ASN) → ''."""
    out = {}
    for key, value in (values or {}).items():
        if value is None:
            text = ""
        else:
            text = str(value)
        if text == "-" or (key == "asn" and text == "0"):
            text = ""
        if key == "skipped":
            text = " ".join(text.split())
        out[key] = text
    return out


def parse_expect(data, where: str) -> Expect:
    if isinstance(data, str):
        data = {"action": data}
    if not isinstance(data, dict):
        raise SuiteError(f"{where}: expect must be a mapping or an action name")
    unknown = set(data) - {"action", "status", "location", "headers", "explain"}
    if unknown:
        raise SuiteError(f"{where}: unknown expect keys {sorted(unknown)}")
    action = data.get("action")
    if action not in ACTIONS:
        raise SuiteError(f"{where}: expect.action must be one of {ACTIONS}, not {action!r}")
    status = int(data.get("status", 0))
    if action == "redirect" and (not data.get("location") or status not in (301, 302, 303, 307, 308)):
        raise SuiteError(f"{where}: a redirect needs status 301/302/303/307/308 and a location")
    if action in ("respond", "host") and not 100 <= status <= 599:
        raise SuiteError(f"{where}: {action} needs a status")
    explain = normalize_explain(data.get("explain") or {})
    bad = set(explain) - set(EXPLAIN_FIELDS)
    if bad:
        raise SuiteError(f"{where}: unknown explain fields {sorted(bad)} (known: {EXPLAIN_FIELDS})")
    location = data.get("location")
    if isinstance(location, dict):
        location = to_bytes(location).decode("latin-1")
    return Expect(action=action, status=status, location=location,
                  headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()}, explain=explain)


@dataclass
class Alternative:
    """A replacement (variant) or additional acceptable (accept) outcome for backends with traits."""

    when: frozenset[str]
    expect: Expect
    because: str


@dataclass(frozen=True)
class HealthSpec:
    """The health state a case is decided with: `none` (no state file), `state` (a fresh state
    file; the members in `down` are down, every other member up) or `file` (an unusable file of
    kind `file`: stale, corrupt or written for other pools; it must decide as all up)."""

    kind: str                          # none | state | file
    down: tuple[str, ...] = ()         # member URLs (kind state), sorted
    file: str = ""                     # stale | corrupt | other (kind file)

    def describe(self) -> str:
        if self.kind == "none":
            return "no health state file"
        if self.kind == "file":
            kind = {"other": "a health state file of other pools"}.get(self.file, f"a {self.file} health state file")
            return f"{kind} (as all up)"
        return f"down: {', '.join(self.down)}" if self.down else "every member up"


def parse_health(data, where: str, members: set[str]) -> HealthSpec:
    """`none`, `{down: [URL, …]}` or `{file: stale|corrupt|other}`; down URLs must be members of
    the config's pools."""
    if data == "none":
        return HealthSpec("none")
    if not isinstance(data, dict) or len(data) != 1 or not set(data) <= {"down", "file"}:
        raise SuiteError(f"{where}: health must be 'none', {{down: [member URLs]}} or {{file: {'|'.join(HEALTH_FILES)}}}")
    if "file" in data:
        if data["file"] not in HEALTH_FILES:
            raise SuiteError(f"{where}: health.file must be one of {HEALTH_FILES}, not {data['file']!r}")
        return HealthSpec("file", file=str(data["file"]))
    down = data["down"] or []
    if not isinstance(down, list):
        raise SuiteError(f"{where}: health.down must be a list of member URLs")
    unknown = sorted(str(u) for u in down if str(u) not in members)
    if unknown:
        raise SuiteError(f"{where}: health.down names {unknown}, which are not members of the config's pools "
                         f"(members: {sorted(members)})")
    return HealthSpec("state", down=tuple(sorted({str(u) for u in down})))


def pool_members(config: dict) -> set[str]:
    """The member URLs of the config's named pools."""
    out = set()
    for pool in (config.get("pools") or {}).values():
        for member in (pool or {}).get("members") or []:
            if isinstance(member, dict) and "url" in member:
                out.add(str(member["url"]))
    return out


@dataclass
class Case:
    suite: str
    name: str
    request: Request
    expect: Expect
    variants: list[Alternative] = field(default_factory=list)
    accept: list[Alternative] = field(default_factory=list)
    requires: frozenset[str] = frozenset()
    tags: tuple[str, ...] = ()
    note: str = ""
    health: HealthSpec | None = None   # None: the suite does not manage health (no case names a state)
    # Suites with mirrors: what the mirrors hold of the case's objects ({mirror: {path: answer}}),
    # and the mirrors that must receive its HEADs, in order (None: not checked).
    contents: dict[str, dict[str, str]] = field(default_factory=dict)
    checked: tuple[str, ...] | None = None

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.name}"

    def describe_request(self) -> str:
        """The request, the health state it is decided with when the case names one, and what
        the mirrors hold of its objects."""
        text = self.request.describe()
        if self.health is not None:
            text += f" [health: {self.health.describe()}]"
        for mirror, answers in self.contents.items():
            text += f" [{mirror}: {', '.join(f'{path} {answer}' for path, answer in answers.items())}]"
        return text

    def expectations_for(self, traits: frozenset[str]) -> tuple[Expect, list[Alternative], str]:
        """The expected outcome for a backend with `traits`, the other acceptable outcomes, and
        why the expectation differs from the contract's (empty when it does not)."""
        primary, because = self.expect, ""
        for variant in self.variants:
            if variant.when <= traits:
                primary, because = variant.expect, variant.because
                break
        extra = [a for a in self.accept if a.when <= traits]
        return primary, extra, because


def _alternatives(items, where: str, kind: str) -> list[Alternative]:
    out = []
    for i, item in enumerate(items or []):
        place = f"{where}.{kind}[{i}]"
        if not isinstance(item, dict):
            raise SuiteError(f"{place}: must be a mapping")
        when = item.get("when", [])
        when = frozenset([when] if isinstance(when, str) else when)
        if item.get("reject"):
            expect = Expect("reject")
        else:
            expect = parse_expect(item.get("expect"), place + ".expect")
        because = item.get("because", "")
        if not because:
            raise SuiteError(f"{place}: say 'because' (why these backends differ from the contract)")
        out.append(Alternative(when, expect, because))
    return out


# --------------------------------------------------------------------------- suites


@dataclass
class Suite:
    name: str
    path: Path
    description: str
    config: dict                  # the redirector config (paths made absolute)
    config_source: Path | None    # the config file when given by path
    files: dict[str, str]         # extra files written next to the compiled config
    cases: list[Case]
    # The trusted peer that delivers `client` in X-Forwarded-For. Not 127.0.0.1: a proxy's own hop to
    # the sidecar comes from there, and Envoy replaces a 127.0.0.1 peer by the host's interface address.
    peer: str = "127.0.0.5"
    # The loopback mirrors the routes' presence checks reach (conformance.presence), when named.
    mirrors: Mirrors | None = None

    @property
    def has_health(self) -> bool:
        """Whether the cases name health states (the harness then manages each backend's state)."""
        return any(c.health is not None for c in self.cases)

    @property
    def trusted_proxies(self) -> list[str]:
        return [str(p) for p in (self.config.get("trustedProxies") or [])]

    def write_config(self, directory: Path) -> Path:
        """Writes the config (and its extra files) into `directory`; returns the config path."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            (directory / name).write_text(text)
        dest = directory / "redirector.yaml"
        dest.write_text(yaml.safe_dump(self.compiled_config(), sort_keys=False))
        return dest

    def compiled_config(self) -> dict:
        """The config compiled for the suite: as written, plus — when the cases name health states —
        the harness's health probe (conformance.health.with_probe)."""
        if not self.has_health:
            return self.config
        from .health import with_probe
        return with_probe(self.config)


def load_suite(path: Path) -> Suite:
    path = Path(path).resolve()
    try:
        text = path.read_text()
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SuiteError(f"{path}: {e}") from e
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a suite is a mapping")
    mirrors = None
    if "mirrors" in data:
        # Loopback mirrors: their base URLs replace @MIRROR:NAME@ everywhere in the suite.
        try:
            mirrors = Mirrors([str(n) for n in data["mirrors"] or []])
            data = yaml.safe_load(mirrors.substitute(text))
        except ContentsError as e:
            raise SuiteError(f"{path}: mirrors: {e}") from e
    known = {"suite", "description", "config", "asnTable", "trust", "files", "defaults", "cases", "peer", "health",
             "presence", "mirrors"}
    unknown = set(data) - known
    if unknown:
        raise SuiteError(f"{path}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    name = data.get("suite") or path.stem
    files = {str(k): str(v) for k, v in (data.get("files") or {}).items()}
    config = data.get("config")
    config_source = None
    if isinstance(config, str):
        config_source = (path.parent / config).resolve()
        if not config_source.exists():
            raise SuiteError(f"{path}: config {config} does not exist ({config_source})")
        config = yaml.safe_load(config_source.read_text())
        config = absolutize(config, config_source.parent)
    elif isinstance(config, dict):
        config = absolutize(config, path.parent, set(files))
    else:
        raise SuiteError(f"{path}: config must be a mapping (inline) or a path")
    if "asnTable" in data:
        # The suite's ASN table replaces the config's, e.g. to pin a config that prefers a system
        # database to the committed data its expectations were worked out from.
        config["asnTable"] = absolutize({"asnTable": data["asnTable"]}, path.parent)["asnTable"]
    if "presence" in data:
        # `assume-present`: the suite is about routing, and every object is taken to be on every
        # mirror, so the routes' presence checks (which would reach the configured hosts) are
        # dropped; test_presence.py checks presence against real registries and buckets.
        if data["presence"] != "assume-present":
            raise SuiteError(f"{path}: presence must be 'assume-present'")
        for route in config.get("routes") or []:
            if isinstance(route.get("redirect"), dict):
                route["redirect"].pop("verify", None)
    verifying = [r.get("name", "?") for r in config.get("routes") or []
                 if isinstance(r.get("redirect"), dict) and r["redirect"].get("verify")]
    if verifying and mirrors is None:
        raise SuiteError(f"{path}: routes {verifying} verify presence: name the suite's loopback mirrors "
                         "(`mirrors`), or say `presence: assume-present`, so that no check leaves loopback")
    if "trust" in data:
        # The suite's trusted proxies replace the config's (a config given by path may have none).
        config["trustedProxies"] = [str(p) for p in (data["trust"] or [])]
    defaults = data.get("defaults") or {}
    members = pool_members(config)
    default_health = parse_health(data["health"], f"{path.name}: health", members) if "health" in data else None
    cases = []
    seen = set()
    for i, item in enumerate(data.get("cases") or []):
        where = f"{path.name}: cases[{i}]"
        if not isinstance(item, dict) or "name" not in item:
            raise SuiteError(f"{where}: a case needs a name")
        where = f"{path.name}: case '{item['name']}'"
        unknown = set(item) - {"name", "request", "expect", "variants", "accept", "requires", "tags", "note", "health",
                               "contents", "checked"}
        if unknown:
            raise SuiteError(f"{where}: unknown keys {sorted(unknown)}")
        if item["name"] in seen:
            raise SuiteError(f"{where}: duplicate case name")
        seen.add(item["name"])
        if "expect" not in item:
            raise SuiteError(f"{where}: expect is required")
        requires = item.get("requires") or []
        if ("contents" in item or "checked" in item) and mirrors is None:
            raise SuiteError(f"{where}: contents and checked need the suite's `mirrors`")
        try:
            contents = mirrors.declare(item["contents"], where) if "contents" in item else {}
        except ContentsError as e:
            raise SuiteError(str(e)) from e
        checked = item.get("checked")
        if checked is not None and (not isinstance(checked, list) or not set(map(str, checked)) <= set(mirrors.ports)):
            raise SuiteError(f"{where}: checked must list mirrors of the suite ({sorted(mirrors.ports)}), not {checked!r}")
        cases.append(Case(
            suite=name, name=str(item["name"]),
            request=parse_request(item.get("request"), defaults, where + ".request"),
            expect=parse_expect(item["expect"], where + ".expect"),
            variants=_alternatives(item.get("variants"), where, "variants"),
            accept=_alternatives(item.get("accept"), where, "accept"),
            requires=frozenset([requires] if isinstance(requires, str) else requires),
            tags=tuple(item.get("tags") or ()), note=str(item.get("note", "")),
            health=parse_health(item["health"], where + ".health", members) if "health" in item else default_health,
            contents=contents, checked=tuple(map(str, checked)) if checked is not None else None))
    if not cases:
        raise SuiteError(f"{path}: no cases")
    if any(c.health is not None for c in cases):
        # A suite that manages health decides every case with a named state (no file by default).
        for c in cases:
            c.health = c.health or HealthSpec("none")
        from .health import check_layout
        check_layout(config, f"{path.name}: config")
    return Suite(name=name, path=path, description=str(data.get("description", "")).strip(), config=config,
                 config_source=config_source, files=files, cases=cases, peer=str(data.get("peer", "127.0.0.5")),
                 mirrors=mirrors)


def discover(paths: list[Path] | None = None) -> list[Suite]:
    """Suites from files or directories (default: Tests/Conformance/cases)."""
    files: list[Path] = []
    for p in paths or [CASES_DIR]:
        p = Path(p)
        if p.is_dir():
            files += sorted(p.glob("*.yaml"))
        else:
            files.append(p)
    return [load_suite(f) for f in files]


def select(cases: list[Case], patterns: list[str] | None) -> list[Case]:
    """Cases whose id matches any of the regular expressions (all when none)."""
    if not patterns:
        return cases
    regexes = [re.compile(p) for p in patterns]
    return [c for c in cases if any(r.search(c.id) for r in regexes)]
