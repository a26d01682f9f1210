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

RDR_ABI_VERSION = 2

RDR_OK = 0
RDR_NO_MATCH = -1
RDR_ENOSPC = -1
RDR_EINVAL = -2
RDR_ERANGE = -3

RDR_PASS = 0
RDR_REDIRECT = 1
RDR_RESPOND = 2

ACTIONS = {RDR_PASS: "pass", RDR_REDIRECT: "redirect", RDR_RESPOND: "respond"}


class Request(ctypes.Structure):
    """rdr_request"""

    _fields_ = [("client", ctypes.c_char_p), ("client_len", ctypes.c_size_t),
                ("method", ctypes.c_char_p), ("method_len", ctypes.c_size_t),
                ("host", ctypes.c_char_p), ("host_len", ctypes.c_size_t),
                ("path", ctypes.c_char_p), ("path_len", ctypes.c_size_t)]


class Decision(ctypes.Structure):
    """rdr_decision"""

    _fields_ = [("action", ctypes.c_int32), ("status", ctypes.c_int32), ("location_len", ctypes.c_size_t),
                ("provider", ctypes.c_int32), ("route", ctypes.c_int32), ("asn", ctypes.c_uint32),
                ("attribute", ctypes.c_int32), ("family", ctypes.c_int32), ("client", ctypes.c_uint8 * 16),
                ("provider_name", ctypes.c_char_p), ("region", ctypes.c_char_p),
                ("route_name", ctypes.c_char_p), ("target_host", ctypes.c_char_p)]


def request(client: bytes | None, method: bytes | None, path: bytes | None, host: bytes | None = b"mirror.test") -> Request:
    """An rdr_request over Python bytes (which must outlive the call)."""
    return Request(client, len(client or b""), method, len(method or b""), host, len(host or b""),
                   path, len(path or b""))


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
    "rdr_decide": (ctypes.c_int, [_TABLE, ctypes.POINTER(Request), ctypes.POINTER(Decision), _TEXT, _SIZE]),
    "rdr_format_prefix": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(Decision), _TEXT, _SIZE]),
    "rdr_route_header_count": (ctypes.c_int32, [_TABLE, ctypes.c_int32]),
    "rdr_route_header": (ctypes.c_int, [_TABLE, ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(_TEXT),
                                        ctypes.POINTER(_TEXT)]),
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
               buffer: int = 256) -> Decided:
        """rdr_decide into a `buffer`-byte Location buffer, retried with the size it asks for
        when that is too small (RDR_ENOSPC)."""
        req, out = request(client, method, path, host), Decision()
        buf = ctypes.create_string_buffer(buffer)
        start = time.perf_counter_ns()
        rc = self.c.rdr_decide(self.handle, ctypes.byref(req), ctypes.byref(out), buf, buffer)
        if rc == RDR_ENOSPC:
            buf = ctypes.create_string_buffer(out.location_len + 1)
            rc = self.c.rdr_decide(self.handle, ctypes.byref(req), ctypes.byref(out), buf, len(buf))
        ns = time.perf_counter_ns() - start
        location = buf.raw[:out.location_len] if rc == RDR_OK and out.action == RDR_REDIRECT else None
        return Decided(rc, out, location, ns)

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
