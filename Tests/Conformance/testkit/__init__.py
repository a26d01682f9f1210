"""Redirector's Python test kit: what the integration tests (Tests/Integration) and the
conformance harness (the `conformance` package beside this one) share.

    paths      where the built artifacts, fixtures, examples and installed programs are
    abi        the ctypes binding of libredirector.so (include/redirector.h)
    http       a byte-exact HTTP/1.1 client for loopback servers, free ports, waits
    processes  server processes in their own session, stopped by PID
    origin     an in-process origin server that records what reaches it
    nginx      nginx masters in private prefixes, the shipped example configs
    sidecar    `redirector serve`
    proxies    Envoy, Caddy, Traefik and nginx auth_request in front of a sidecar
    snapshots  compiling, deciding with the CLI, snapshot surgery, atomic replacement
    fixtures   the integration tests' policy and loopback address plan
    data       the real BGP tables (Debian python3-pyasn)

Everything listens on loopback only (127.0.0.0/8, ::1), on free ports.
"""
