#!/usr/bin/env bash
# Sets up a Debian machine and runs every test: Swift unit tests, then the integration suites
# (oracles on real BGP tables, the C ABI, the NGINX module and Lua binding, the sidecar behind
# real Envoy/Caddy/nginx, the conformance harness) against real components on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/build.sh
swift test -c release -Xswiftc -enable-testing 2>&1 | tee out/swift-test.log | grep -vE "^\[[0-9]+/[0-9]+\] (Compiling|Emitting|Write|Linking)" || exit 1
# Everything the integration tests need was built above: a missing prerequisite is a failure, never a skip.
REDIRECTOR_REQUIRE_ALL=1 python3 -m pytest -q   # pytest.ini: Tests/Integration, the kit's import paths
