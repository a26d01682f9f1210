#!/usr/bin/env bash
# Decision cost of pools (issue 11): ns per rdr_decide through the C ABI with one-URL targets and
# no health state, next to the same requests decided with pools of three weighted, health-checked
# members and a loaded health state (all up; first member down), in one run. Timings on a shared 2-core
# machine are noisy: read the ratio.
#
#   scripts/bench-decide.sh [DECISIONS]
#   scripts/bench-decide.sh --instructions [DECISIONS]
#
# --instructions counts instead of timing: each variant's DECISIONS (default 4096, every distinct
# request once) run under callgrind, collecting inside rdr_decide only, and the instructions per
# decision are reported with their ratio to the one-URL decision (the same on every run).
set -euo pipefail
cd "$(dirname "$0")/.."
instructions=
if [ "${1:-}" = --instructions ]; then instructions=1; shift; fi
decisions=${1:-$([ -n "$instructions" ] && echo 4096 || echo 4000000)}
work=$(mktemp -d)
trap '[ -n "${KEEP_WORK:-}" ] && echo "kept $work" || rm -rf "$work"' EXIT

[ -x .build/release/redirector ] && [ -f out/lib/libredirector.so ] || bash scripts/build.sh >/dev/null
gcc -O2 -march=x86-64 -Wall -Wextra -Werror -Iinclude Benchmarks/abi/decide_bench.c \
  -Lout/lib -lredirector -Wl,-rpath,"$PWD/out/lib" -o "$work/decide_bench"

# 256 /16s of one provider in four regions; clients spread over them.
python3 - "$work" <<'PY'
import random, sys
work = sys.argv[1]
regions = ["eu-west-1", "eu-central-1", "us-east-1", "ap-southeast-2"]
rng = random.Random(7)
with open(f"{work}/cloud.csv", "w") as f:
    f.write("prefix,provider,region\n")
    for i in range(256):
        f.write(f"10.{i}.0.0/16,,{regions[i % 4]}\n")
with open(f"{work}/clients.txt", "w") as f:
    for _ in range(4096):
        f.write(f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}\n")
PY
route='routes: [{ name: files, path: "/pub/{name}", clients: matched, redirect: { to: artifacts } }]'
cat > "$work/single.yaml" <<YAML
version: 1
providers:
  - name: cloud
    artifacts: https://origin.example
    regions:
      eu-west-1: { artifacts: https://eu-1.example }
      eu-central-1: { artifacts: https://eu-2.example }
      us-east-1: { artifacts: https://us-1.example }
      ap-southeast-2: { artifacts: https://ap-1.example }
    sources: [{ format: csv, path: cloud.csv }]
$route
YAML
pool() { printf '  %s:\n    health: { path: /healthz }\n    members:\n' "$1"
         printf '      - { url: "https://%s-a.example", weight: 2 }\n      - { url: "https://%s-b.example" }\n' "$1" "$1"
         printf '      - { url: "https://%s-c.example", priority: 1 }\n' "$1"; }
{
  echo "version: 1"
  echo "pools:"
  for name in eu1 eu2 us1 ap1 origin; do pool "$name"; done
  cat <<YAML
providers:
  - name: cloud
    artifacts: { pool: origin }
    nearestRegion: true
    regions:
      eu-west-1: { artifacts: { pool: eu1 } }
      eu-central-1: { artifacts: { pool: eu2 } }
      us-east-1: { artifacts: { pool: us1 } }
      ap-southeast-2: { artifacts: { pool: ap1 } }
    sources: [{ format: csv, path: cloud.csv }]
$route
YAML
} > "$work/pool.yaml"
.build/release/redirector compile -c "$work/single.yaml" -o "$work/single.rdb" >/dev/null 2>&1
.build/release/redirector compile -c "$work/pool.yaml" -o "$work/pool.rdb" >/dev/null 2>&1
# Fresh states, all up and with the first member of every pool down, written by the tests'
# independent encoder.
python3 - "$work" <<'PY'
import sys
sys.path.insert(0, "Tests/Integration")
import health_state as hs
work = sys.argv[1]
names = ["eu1", "eu2", "us1", "ap1", "origin"]   # pools are numbered by name, sorted
members = [f"https://{n}-{m}.example" for n in sorted(names) for m in "abc"]
fp = hs.fingerprint(members, "/healthz")
for name, down in (("up", set()), ("down", set(range(0, len(members), 3)))):
    records = [hs.Record(hs.DOWN if i in down else hs.UP) for i in range(len(members))]
    open(f"{work}/{name}.health", "wb").write(hs.encode(records, fingerprint_value=fp, stale_after_ms=600_000))
PY
args=("$work/single.rdb" "$work/pool.rdb" "$work/up.health" "$work/down.health" "$work/clients.txt" "$decisions")
if [ -n "$instructions" ]; then
  echo "== rdr_decide: instructions per decision (callgrind, $decisions decisions each)"
  base=
  for variant in single up down; do
    valgrind --tool=callgrind --toggle-collect=rdr_decide --callgrind-out-file="$work/$variant.callgrind" \
      "$work/decide_bench" "${args[@]}" "$variant" >/dev/null 2>"$work/$variant.valgrind" \
      || { cat "$work/$variant.valgrind" >&2; exit 1; }
    count=$(awk -v n="$decisions" '/^summary:/ { printf "%.0f", $2 / n }' "$work/$variant.callgrind")
    base=${base:-$count}
    printf '  %-7s %8s instructions/decision  ratio %.3f\n' "$variant" "$count" "$(awk -v a="$count" -v b="$base" 'BEGIN { print a / b }')"
  done
  exit 0
fi
echo "== rdr_decide: one-URL targets vs pools with health"
"$work/decide_bench" "${args[@]}"
