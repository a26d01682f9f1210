#!/usr/bin/env bash
# The long robustness runs (issue 6), one command, a results table at the end:
#   - soaks of every backend, ≥ 1 million requests each under wrk with RSS sampled: the NGINX
#     C module, the Lua binding, the sidecar (ext_authz and standalone), the C ABI in a loop;
#   - valgrind memcheck (full leak check) of the C ABI over the fuzz corpus;
#   - nginx (C module, Lua) and sidecar reloads under load, snapshot files replaced atomically and
#     in place under load, the sidecar killed and restarted behind Envoy and Caddy.
# Sizes: SOAK_REQUESTS, SOAK_ABI_DECISIONS, SOAK_RELOADS, SOAK_RESTARTS, SOAK_REPLACEMENTS;
# SOAK_ONLY=abi,valgrind,nginx,lua,sidecar,reloads,replacements,kills runs a subset
# (see Tests/Integration/robustness/soak.py). The bounded versions run in
# Tests/Integration/test_robustness.py. Exit status 1 when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .build/release/redirector ] || [ ! -f out/lib/libredirector.so ] || [ ! -f out/nginx/ngx_http_redirector_module.so ]; then
  scripts/build.sh
fi
# The same import roots as pytest.ini's pythonpath.
PYTHONPATH=Tests/Conformance:Tests/Integration exec python3 -m robustness.soak "$@"
