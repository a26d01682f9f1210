#!/usr/bin/env bash
# The main job on the embedded default dataset: set up, build, compile examples/simple (real AWS,
# Google Cloud and k8s.io vendor ASN data under examples/data) into a snapshot, show what it holds,
# and explain the decision for a few sample requests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/build.sh
cli=.build/release/redirector
$cli compile --config examples/simple/redirector.yaml --output out/default.rdb
$cli inspect out/default.rdb
echo
echo "Sample decisions (redirector decide):"
for request in "3.5.140.7 GET /v2/pause/manifests/3.9" "34.35.1.1 GET /v2/pause/blobs/sha256:0123abcd" \
               "2600:1900:8000::1 HEAD /releases/v1.31.0/bin/linux/amd64/kubectl" \
               "8.8.8.8 GET /v2/pause/manifests/3.9?ns=docker.io" "192.0.2.1 GET /v2/pause/manifests/3.9" \
               "3.5.140.7 POST /v2/pause/blobs/uploads/"; do
  set -- $request
  printf '%s %s %s\n  ' "$1" "$2" "$3"
  $cli decide --snapshot out/default.rdb --client "$1" --method "$2" "$3"
done
