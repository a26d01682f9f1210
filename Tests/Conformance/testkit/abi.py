"""The one Python binding of libredirector.so's C ABI (include/redirector.h), through ctypes.

The structures and constants below restate the header for ctypes; test_abi_layout.py compiles
the header with a C compiler and fails when a size, an offset or a value here (or in the Lua
binding's cdef) disagrees with it.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from pathlib import Path

from . import paths

RDR_ABI_VERSION = 4

RDR_OK = 0
RDR_NO_MATCH = -1
RDR_ENOSPC = -1
RDR_EINVAL = -2
RDR_ERANGE = -3
RDR_EHEALTH = -4
RDR_MAX_HEADERS = 32

RDR_PASS = 0
RDR_REDIRECT = 1
RDR_RESPOND = 2

RDR_STEP_NONE = 0
RDR_STEP_PRIMARY = 1
RDR_STEP_POOL_FALLBACK = 2
RDR_STEP_NEAREST_REGION = 3
RDR_STEP_PROVIDER = 4
RDR_STEP_DEFAULT = 5
RDR_STEP_PASS = 6

ACTIONS = {RDR_PASS: "pass", RDR_REDIRECT: "redirect", RDR_RESPOND: "respond"}


class Header(ctypes.Structure):
    """rdr_header"""

    _fields_ = [("name", ctypes.c_char_p), ("name_len", ctypes.c_size_t),
                ("value", ctypes.c_char_p), ("value_len", ctypes.c_size_t)]


class Request(ctypes.Structure):
    """rdr_request"""

    _fields_ = [("client", ctypes.c_char_p), ("client_len", ctypes.c_size_t),
                ("method", ctypes.c_char_p), ("method_len", ctypes.c_size_t),
                ("host", ctypes.c_char_p), ("host_len", ctypes.c_size_t),
                ("path", ctypes.c_char_p), ("path_len", ctypes.c_size_t),
                ("headers", ctypes.POINTER(Header)), ("header_count", ctypes.c_size_t),
                ("health", ctypes.c_void_p),
                ("missing", ctypes.POINTER(ctypes.c_uint32)), ("missing_count", ctypes.c_size_t),
                ("checks_exhausted", ctypes.c_int32)]


class Decision(ctypes.Structure):
    """rdr_decision"""

    _fields_ = [("action", ctypes.c_int32), ("status", ctypes.c_int32), ("location_len", ctypes.c_size_t),
                ("provider", ctypes.c_int32), ("route", ctypes.c_int32), ("asn", ctypes.c_uint32),
                ("attribute", ctypes.c_int32), ("family", ctypes.c_int32), ("client", ctypes.c_uint8 * 16),
                ("provider_name", ctypes.c_char_p), ("region", ctypes.c_char_p),
                ("route_name", ctypes.c_char_p), ("target_host", ctypes.c_char_p),
                ("pool", ctypes.c_int32), ("member", ctypes.c_int32), ("step", ctypes.c_int32),
                ("pool_name", ctypes.c_char_p), ("step_name", ctypes.c_char_p), ("verify", ctypes.c_int32)]


class Presence(ctypes.Structure):
    """rdr_presence"""

    _fields_ = [("timeout_ms", ctypes.c_uint32), ("present_ttl_ms", ctypes.c_uint32), ("absent_ttl_ms", ctypes.c_uint32),
                ("cache_entries", ctypes.c_uint32), ("concurrency", ctypes.c_uint32), ("max_checks", ctypes.c_uint32),
                ("verify_routes", ctypes.c_int32),
                ("verify_route", ctypes.c_char_p)]


def request(client: bytes | None, method: bytes | None, path: bytes | None, host: bytes | None = b"mirror.test",
            headers: list[tuple[bytes, bytes]] | None = None, health: "Health | None" = None,
            missing: list[int] | None = None, exhausted: bool = False) -> Request:
    """An rdr_request over Python bytes (which must outlive the call; the header and missing
    arrays are kept on the request as `_headers` and `_missing`); `exhausted` sets
    checks_exhausted."""
    req = Request(client, len(client or b""), method, len(method or b""), host, len(host or b""),
                  path, len(path or b""))
    if headers:
        array = (Header * len(headers))(*[Header(n, len(n), v, len(v)) for n, v in headers])
        req.headers, req.header_count, req._headers = array, len(headers), array
    if health is not None:
        req.health = health.handle
    if missing:
        slots = (ctypes.c_uint32 * len(missing))(*missing)
        req.missing, req.missing_count, req._missing = slots, len(missing), slots
    req.checks_exhausted = 1 if exhausted else 0
    return req


_TABLE, _TEXT, _SIZE = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t
# Every function of the header: name -> (return type, argument types).
PROTOTYPES = {
    "rdr_abi_version": (ctypes.c_uint32, []),
    "rdr_open": (_TABLE, [_TEXT, _TEXT, _SIZE]),
    "rdr_close": (None, [_TABLE]),
    "rdr_lookup": (ctypes.c_int32, [_TABLE, _TEXT, _SIZE]),
    "rdr_lookup_batch_v4": (_SIZE, [_TABLE, ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_int32), _SIZE]),
    "rdr_provider_count": (ctypes.c_int32, [_TABLE]),
    "rdr_provider_name": (_TEXT, [_TABLE, ctypes.c_int32]),
    "rdr_attribute_source": (_TEXT, [_TABLE, ctypes.c_int32]),
    "rdr_decide": (ctypes.c_int, [_TABLE, ctypes.POINTER(Request), ctypes.POINTER(Decision), _TEXT, _SIZE]),
    "rdr_format_prefix": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(Decision), _TEXT, _SIZE]),
    "rdr_route_header_count": (ctypes.c_int32, [_TABLE, ctypes.c_int32]),
    "rdr_route_header": (ctypes.c_int, [_TABLE, ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(_TEXT),
                                        ctypes.POINTER(_TEXT)]),
    "rdr_header_name_count": (ctypes.c_int32, [_TABLE]),
    "rdr_header_name": (_TEXT, [_TABLE, ctypes.c_int32]),
    "rdr_health_new": (ctypes.c_void_p, [_TABLE]),
    "rdr_health_load": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, _SIZE, ctypes.c_int64, _TEXT, _SIZE]),
    "rdr_health_expires": (ctypes.c_int64, [ctypes.c_void_p]),
    "rdr_health_down_count": (ctypes.c_int32, [ctypes.c_void_p]),
    "rdr_health_free": (None, [ctypes.c_void_p]),
    "rdr_format_skipped": (ctypes.c_int, [_TABLE, ctypes.POINTER(Request), _TEXT, _SIZE]),
    "rdr_presence_settings": (ctypes.c_int, [_TABLE, ctypes.POINTER(Presence)]),
}


@dataclass
class Decided:
    """One rdr_decide: its return code, the filled decision, the Location bytes of a redirect, and
    the nanoseconds spent in rdr_decide (both calls when the first buffer was too small)."""

    rc: int
    decision: Decision
    location: bytes | None
    ns: int

    @property
    def action(self) -> str:
        return ACTIONS.get(self.decision.action, f"?{self.decision.action}")


class Library:
    """libredirector.so loaded with every function of the header declared (`c`)."""

    def __init__(self, path: Path | None = None):
        self.path = path = path or paths.LIBRARY
        self.c = ctypes.CDLL(str(path))
        for name, (restype, argtypes) in PROTOTYPES.items():
            function = getattr(self.c, name)
            function.restype, function.argtypes = restype, argtypes
        if self.c.rdr_abi_version() != RDR_ABI_VERSION:
            raise RuntimeError(f"{path}: ABI version {self.c.rdr_abi_version()}, this binding speaks {RDR_ABI_VERSION}")

    def try_open(self, snapshot: Path) -> tuple["Table | None", str]:
        """rdr_open: the table, or None and the library's message."""
        err = ctypes.create_string_buffer(1024)
        handle = self.c.rdr_open(str(snapshot).encode(), err, len(err))
        return (Table(self, handle) if handle else None), err.value.decode(errors="replace")

    def open(self, snapshot: Path) -> "Table":
        """rdr_open, raising RuntimeError with the library's message on failure."""
        table, message = self.try_open(snapshot)
        if table is None:
            raise RuntimeError(f"rdr_open failed: {message}")
        return table


class Table:
    """An open snapshot (rdr_table *)."""

    def __init__(self, library: Library, handle: int):
        self.c, self.handle = library.c, handle

    def close(self) -> None:
        if self.handle:
            self.c.rdr_close(self.handle)
            self.handle = None

    def decide(self, client: bytes, method: bytes, path: bytes, host: bytes = b"mirror.test",
               buffer: int = 256, headers: list[tuple[bytes, bytes]] | None = None,
               health: "Health | None" = None, missing: list[int] | None = None, exhausted: bool = False) -> Decided:
        """rdr_decide into a `buffer`-byte Location buffer, retried with the size it asks for
        when that is too small (RDR_ENOSPC); `headers`, `health`, `missing` and `exhausted` go
        into the request."""
        req, out = request(client, method, path, host, headers, health, missing, exhausted), Decision()
        buf = ctypes.create_string_buffer(buffer)
        start = time.perf_counter_ns()
        rc = self.c.rdr_decide(self.handle, ctypes.byref(req), ctypes.byref(out), buf, buffer)
        if rc == RDR_ENOSPC:
            buf = ctypes.create_string_buffer(out.location_len + 1)
            rc = self.c.rdr_decide(self.handle, ctypes.byref(req), ctypes.byref(out), buf, len(buf))
        ns = time.perf_counter_ns() - start
        location = buf.raw[:out.location_len] if rc == RDR_OK and out.action == RDR_REDIRECT else None
        return Decided(rc, out, location, ns)

    def lookup(self, address: bytes) -> int:
        """rdr_lookup of a packed address (4 or 16 bytes): the provider index, RDR_NO_MATCH for none."""
        return self.c.rdr_lookup(self.handle, address, len(address))

    def lookup_batch_v4(self, addresses: list[int]) -> list[int]:
        """rdr_lookup_batch_v4 of host-order IPv4 integers: one provider index each."""
        count = len(addresses)
        inputs, outputs = (ctypes.c_uint32 * count)(*addresses), (ctypes.c_int32 * count)()
        assert self.c.rdr_lookup_batch_v4(self.handle, inputs, outputs, count) == count
        return list(outputs)

    def format_prefix(self, decision: Decision) -> str:
        """rdr_format_prefix: the prefix that matched the decision's client as text, "" when none did."""
        text = ctypes.create_string_buffer(64)
        n = self.c.rdr_format_prefix(self.handle, ctypes.byref(decision), text, len(text))
        return text.value.decode() if n > 0 else ""

    def route_headers(self, route: int) -> list[tuple[str, str]]:
        """rdr_route_header for every header of `route`."""
        out = []
        for i in range(self.c.rdr_route_header_count(self.handle, route)):
            name, value = ctypes.c_char_p(), ctypes.c_char_p()
            if self.c.rdr_route_header(self.handle, route, i, ctypes.byref(name), ctypes.byref(value)) == RDR_OK:
                out.append((name.value.decode(), value.value.decode()))
        return out

    def header_names(self) -> list[str]:
        """rdr_header_name for every index rdr_header_name_count gives."""
        return [self.c.rdr_header_name(self.handle, i).decode()
                for i in range(self.c.rdr_header_name_count(self.handle))]

    def health(self) -> "Health":
        """rdr_health_new: a health state for this table, every member up."""
        handle = self.c.rdr_health_new(self.handle)
        if not handle:
            raise RuntimeError("rdr_health_new failed")
        return Health(self, handle)

    def format_skipped(self, client: bytes, method: bytes, path: bytes, host: bytes = b"mirror.test",
                       headers: list[tuple[bytes, bytes]] | None = None, health: "Health | None" = None,
                       buffer: int = 1024, missing: list[int] | None = None, exhausted: bool = False) -> tuple[int, str]:
        """rdr_format_skipped: (return code, text)."""
        req = request(client, method, path, host, headers, health, missing, exhausted)
        text = ctypes.create_string_buffer(buffer)
        rc = self.c.rdr_format_skipped(self.handle, ctypes.byref(req), text, buffer)
        return rc, text.value.decode(errors="replace")


class Health:
    """A health state (rdr_health *) of one table."""

    def __init__(self, table: Table, handle: int):
        self.c, self.handle = table.c, handle

    def load(self, data: bytes, now_ms: int | None = None) -> tuple[int, str]:
        """rdr_health_load at `now_ms` (default: now): (return code, message)."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        err = ctypes.create_string_buffer(512)
        rc = self.c.rdr_health_load(self.handle, data, len(data), now_ms, err, len(err))
        return rc, err.value.decode(errors="replace")

    @property
    def expires(self) -> int:
        return self.c.rdr_health_expires(self.handle)

    @property
    def down_count(self) -> int:
        return self.c.rdr_health_down_count(self.handle)

    def free(self) -> None:
        if self.handle:
            self.c.rdr_health_free(self.handle)
            self.handle = None
