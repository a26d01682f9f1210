"""Mirror contents for suites whose routes verify presence (docs/conformance.md, "Mirror contents").

A suite that names `mirrors: [NAME, …]` gets one loopback HTTP server per name, run by the harness
in its own process. `@MIRROR:<name>@` anywhere in the suite stands for that server's base URL
(`http://127.0.0.1:PORT`), so the config's pools name real mirrors and the expectations the URLs
they will see. Each case says what the mirrors hold of its objects (`contents`): a mirror answers
a listed path as the case says (`present`, or an answer that is not "present": `absent`,
`forbidden`, `gone`, `error`, `redirect`, `garbage`, `reset`) and anything else with 404. The
servers record every HEAD, so a case can also say which mirrors were checked (`checked`).

Backends that check on their own (the sidecar, nginx, the Lua binding, `decide --verify`) send
their HEADs to these servers. The library backends take a resolved decision per call, so the
harness is their host (`verified`): the check loop of the C ABI's contract (include/redirector.h,
"Presence checks"), written here from that text, with its own HEAD and its own reading of the
answer.
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# What a mirror answers for a path a case lists: a status, or a misbehaviour (None).
ANSWERS: dict[str, int | None] = {"present": 200, "absent": 404, "forbidden": 403, "gone": 410, "error": 500,
                                  "redirect": 302, "garbage": None, "reset": None}
PLACEHOLDER = re.compile(r"@MIRROR:([A-Za-z0-9_.-]+)@")
# The check results of the contract: 2xx present; 404, 403, 410 absent; anything else unknown.
ABSENT_STATUSES = frozenset({403, 404, 410})


class ContentsError(ValueError):
    """Mirror names or contents that do not follow the format (the suite loader says where)."""


class Mirrors:
    """The loopback mirrors of one suite, listening from the moment the suite is loaded (on ports
    the system gives, so no other server can take them), as daemon threads of the harness's
    process, which they end with; their contents are the union of what the cases list."""

    def __init__(self, names: list[str]):
        if not names or len(set(names)) != len(names):
            raise ContentsError(f"mirrors must be a list of distinct names, not {names!r}")
        for name in names:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(name)):
                raise ContentsError(f"mirror name {name!r}: use letters, digits, '_', '.' and '-'")
        self.contents: dict[tuple[str, str], str] = {}
        self.heads: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.ports: dict[str, int] = {}
        for name in map(str, names):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, name))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, name=f"mirror-{name}", daemon=True).start()
            self.ports[name] = server.server_address[1]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def substitute(self, text: str) -> str:
        """`text` with every @MIRROR:NAME@ replaced by that mirror's base URL."""
        def base(match: re.Match) -> str:
            if match.group(1) not in self.ports:
                raise ContentsError(f"{match.group(0)} names no mirror of the suite (mirrors: {sorted(self.ports)})")
            return self.url(match.group(1))
        return PLACEHOLDER.sub(base, text)

    def declare(self, data, where: str) -> dict[str, dict[str, str]]:
        """A case's `contents` ({mirror: [path, …] or {path: answer}}) added to the mirrors'
        contents; a path two cases list with different answers is an error."""
        if not isinstance(data, dict):
            raise ContentsError(f"{where}: contents must map mirror names to paths")
        out: dict[str, dict[str, str]] = {}
        for name, items in data.items():
            if name not in self.ports:
                raise ContentsError(f"{where}: contents name {name!r}, not a mirror of the suite ({sorted(self.ports)})")
            answers = {str(p): "present" for p in items} if isinstance(items, list) else items
            if not isinstance(answers, dict):
                raise ContentsError(f"{where}: contents.{name} must be a list of paths or a mapping path → answer")
            for path, answer in answers.items():
                if not str(path).startswith("/") or answer not in ANSWERS:
                    raise ContentsError(f"{where}: contents.{name}: {path!r}: {answer!r} (a path from '/', "
                                        f"answers: {', '.join(ANSWERS)})")
                known = self.contents.setdefault((name, str(path)), answer)
                if known != answer:
                    raise ContentsError(f"{where}: contents.{name}: {path} is {answer} here and {known} in an "
                                        f"earlier case (a mirror holds one thing at a path for the whole suite)")
            out[str(name)] = {str(p): a for p, a in answers.items()}
        return out

    # ------------------------------------------------------------------ what the servers saw

    def take_heads(self) -> list[tuple[str, str]]:
        """The HEADs received since the last call, in order: (mirror, path)."""
        with self.lock:
            out, self.heads = self.heads, []
        return out

    def answer(self, name: str, path: str) -> str:
        return self.contents.get((name, path), "absent")


def _handler(mirrors: Mirrors, name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

        def do_HEAD(self):
            self.serve(head=True)

        def do_GET(self):
            self.serve(head=False)

        def serve(self, head: bool):
            path = urllib.parse.urlsplit(self.path).path
            if head:
                with mirrors.lock:
                    mirrors.heads.append((name, path))
            answer = mirrors.answer(name, path)
            if answer == "reset":
                # An RST instead of an answer.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                return
            if answer == "garbage":
                self.wfile.write(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
                self.close_connection = True
                return
            body = f"{name} {path}\n".encode() if answer == "present" else b""
            self.send_response(ANSWERS[answer] or 500)
            if answer == "redirect":
                self.send_header("Location", f"http://127.0.0.1:{mirrors.ports[name]}/elsewhere{path}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

    return Handler


# --------------------------------------------------------------------------- the host of library backends


@dataclass
class Settings:
    """The `presence:` settings a host needs: the check's timeout and the checks a request may make."""

    timeout: float = 5.0
    max_checks: int = 3

    @classmethod
    def of(cls, config: dict) -> "Settings":
        presence = config.get("presence") or {}
        out = cls()
        if "timeout" in presence:
            out.timeout = seconds(str(presence["timeout"]))
        if "maxChecks" in presence:
            out.max_checks = int(presence["maxChecks"])
        return out


def seconds(text: str) -> float:
    """A config duration ("5s", "250ms", "1m") in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text.strip())
    if not match:
        raise ContentsError(f"not a duration: {text!r}")
    return float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def check(url: str, timeout: float) -> str:
    """A HEAD of `url` (never followed): present, absent or unknown."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname != "127.0.0.1":
        return "unknown"          # the harness checks its own loopback mirrors only
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = http.client.HTTPConnection("127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        connection.request("HEAD", target, headers={"User-Agent": "redirector-conformance"})
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return "unknown"
    finally:
        connection.close()
    if 200 <= status < 300:
        return "present"
    return "absent" if status in ABSENT_STATUSES else "unknown"


def verified(decide, settings: Settings):
    """The contract's loop: `decide(missing, exhausted)` → (answer, needs_check, location, member).
    While a redirect needs its check, HEAD its Location; when the object is not found there, decide
    again with the member added to `missing`; after `max_checks` checks, once more with the routes
    that verify skipped. Returns the last answer."""
    missing: list[int] = []
    while True:
        exhausted = len(missing) >= settings.max_checks
        answer, needs_check, location, member = decide(list(missing), exhausted)
        if not needs_check or exhausted or location is None or member < 0:
            return answer
        if check(location, settings.timeout) == "present":
            return answer
        missing.append(member)
