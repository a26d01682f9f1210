#!/usr/bin/env bash
# Builds everything: the CLI (.build/release/redirector), the self-contained libredirector.so
# (out/lib) and the NGINX module beside it (out/nginx). `-enable-testing` lets `swift test -c release`
# reuse this build (the library, built apart by build-library.sh, is not affected).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out
swift build -c release -Xswiftc -enable-testing 2>&1 | grep -vE "^\[[0-9]+/[0-9]+\] (Compiling|Emitting|Write)" || exit 1
bash scripts/build-library.sh
if [ -x scripts/build-nginx-module.sh ]; then bash scripts/build-nginx-module.sh; fi
