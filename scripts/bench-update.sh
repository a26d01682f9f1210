#!/usr/bin/env bash
# `redirector update` when nothing changed upstream (issue 13): examples/data served on 127.0.0.1 by
# the test kit's source server (ETag, Last-Modified, 304s), examples/simple/redirector.yaml with its
# AWS, GCP and pyasn sources named by URL; one update fills the cache and installs, then hyperfine
# times the all-304 update (target: ≤ 1 s). REDIRECTOR_CLI picks the binary (default the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
cli=${REDIRECTOR_CLI:-$PWD/.build/release/redirector}
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

[ -x "$cli" ] || swift build -c release --product redirector >/dev/null
mkdir "$work/data"
cp examples/data/aws-ip-ranges.json examples/data/gcp-cloud.json examples/data/k8s-asn-prefixes.dat "$work/data/"
PYTHONPATH=Tests/Conformance python3 -m testkit.sourceserver "$work/data" "$work/port" &
server=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
base="http://127.0.0.1:$(cat "$work/port")"
sed -e "s|path: ../data/aws-ip-ranges.json|url: '$base/aws-ip-ranges.json'|" \
    -e "s|path: ../data/gcp-cloud.json|url: '$base/gcp-cloud.json'|" \
    -e "s|path: ../data/k8s-asn-prefixes.dat|url: '$base/k8s-asn-prefixes.dat'|" \
    -e "s|path: ../data/k8s.io-asns|path: $PWD/examples/data/k8s.io-asns|" \
    examples/simple/redirector.yaml > "$work/redirector.yaml"

update=("$cli" update --config "$work/redirector.yaml" --output "$work/out.rdb")
"${update[@]}"
"${update[@]}" | grep -q '^unchanged' || { echo "bench-update: the second update was not 'unchanged'" >&2; exit 1; }
hyperfine --warmup 2 --runs 20 --export-json "$work/hyperfine.json" "${update[*]}" >&2
python3 - "$work/hyperfine.json" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))["results"][0]
print(f"update, all 304 (default dataset): mean {result['mean'] * 1000:.1f} ms ± {result['stddev'] * 1000:.1f} ms (target ≤ 1000 ms)")
PY
