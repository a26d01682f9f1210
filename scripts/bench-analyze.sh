#!/usr/bin/env bash
# Throughput of `redirector analyze` on a realistic NGINX combined log (a benchmark, not a test).
#
#   scripts/bench-analyze.sh [LINES]        # default 4,000,000 lines (~670 MB)
#
# Generates 250,000 distinct requests with Tests/Integration/generate_logs.py (clients from the
# real AWS/GCP ranges and pyasn data), repeats them up to LINES, then times analyze on the plain
# file (best of 3) and on a gzip copy. Prints lines/s by the wall clock and per CPU second.
# Then `redirector diff OLD NEW --logs` (issue 13) on the same plain file: two snapshots of the
# 512,621-prefix pyasn IPv4 table plus the example providers (the example policy, and the same with
# 307 redirects and no artifacts route), each line parsed once and decided by both; analyze on the
# old one alongside. Set BENCH_SKIP_DIFF=1 to skip it, BENCH_DIR to keep the generated files.
set -euo pipefail
cd "$(dirname "$0")/.."

lines=${1:-4000000}
work=${BENCH_DIR:-$(mktemp -d /tmp/redirector-bench.XXXXXX)}
mkdir -p "$work"
cli=.build/release/redirector
pyasn=/usr/lib/python3/dist-packages/data/ipasn_20140513.dat.gz

if [ ! -x "$cli" ]; then
  swift build -c release --product redirector
fi
"$cli" compile -c examples/simple/redirector.yaml -o "$work/simple.rdb" 2>/dev/null

log=$work/bench-$lines.log
if [ ! -s "$log.gz" ]; then
  if [ ! -s "$work/gen/combined.log.gz" ]; then
    PYTHONPATH=Tests/Conformance python3 Tests/Integration/generate_logs.py --out "$work/gen" --lines 250000 --formats combined --seed 1
  fi
  gzip -dc "$work/gen/combined.log.gz" > "$work/unique.log"
  unique=$(wc -l < "$work/unique.log")
  : > "$log.tmp"
  for _ in $(seq $((lines / unique))); do cat "$work/unique.log" >> "$log.tmp"; done
  head -n $((lines % unique)) "$work/unique.log" >> "$log.tmp"
  mv "$log.tmp" "$log"
  gzip -1 -c "$log" > "$log.gz.tmp" && mv "$log.gz.tmp" "$log.gz"
fi
bytes=$(stat -c %s "$log")

# One run: prints "wall_seconds cpu_seconds analyze_lines_per_second".
run() {
  local timing
  rm -f "$work/out.json"
  timing=$( { /usr/bin/time -f "%e %U %S" "$cli" analyze -s "$work/simple.rdb" "$@" --json "$work/out.json" -q --no-progress; } 2>&1 >/dev/null | tail -1)
  [ -s "$work/out.json" ] || { echo "analyze failed on $*: $timing" >&2; exit 1; }
  python3 - "$timing" "$work/out.json" <<'PY'
import json, sys
wall, user, system = map(float, sys.argv[1].split())
report = json.load(open(sys.argv[2]))
print(f"{wall:.3f} {user + system:.3f} {report['lines_per_second']:.0f} {report['lines']['total']}")
PY
}

echo "input: $log ($lines lines, $((bytes / 1048576)) MiB); snapshot: examples/simple"
best=""
for attempt in 1 2 3; do
  result=$(run "$log")
  read -r wall cpu rate total <<< "$result"
  echo "  plain run $attempt: ${wall}s wall, ${cpu}s CPU, analyze's own rate $(printf "%'d" "$rate") lines/s"
  if [ -z "$best" ] || awk "BEGIN{exit !($wall < ${best%% *})}"; then best="$wall $cpu $rate $total"; fi
done
read -r wall cpu rate total <<< "$best"
gz=$(run "$log.gz")
read -r gzwall gzcpu gzrate _ <<< "$gz"
asn=$(run "$log" --asn-table "$pyasn")
read -r _ _ asnrate _ <<< "$asn"

awk -v total="$total" -v wall="$wall" -v cpu="$cpu" -v rate="$rate" -v gzwall="$gzwall" -v gzcpu="$gzcpu" \
    -v gzrate="$gzrate" -v asnrate="$asnrate" 'BEGIN {
  printf "combined, plain:   %.2f M lines/s wall (%.2f M lines/s per CPU second; analyze loop %.2f M lines/s)\n", total / wall / 1e6, total / cpu / 1e6, rate / 1e6
  printf "combined, gzip:    %.2f M lines/s wall (%.2f M lines/s per CPU second; zlib inflate included)\n", total / gzwall / 1e6, total / gzcpu / 1e6
  printf "with --asn-table:  %.2f M lines/s (analyze loop, table loading excluded)\n", asnrate / 1e6
}'

if [ -z "${BENCH_SKIP_DIFF:-}" ]; then
  # The example config with the whole pyasn table as a second asnTable (prefixes of no provider keep
  # their ASN), and its changed twin.
  python3 - "$PWD/examples" "$pyasn" "$work" <<'PY'
import sys
examples, pyasn, work = sys.argv[1:]
text = open(f"{examples}/simple/redirector.yaml").read().replace("../data/", f"{examples}/data/")
anchor = "  - { format: pyasn, path: " + f"{examples}/data/k8s-asn-prefixes.dat" + " }\n"
assert anchor in text
text = text.replace(anchor, anchor + f"  - {{ format: pyasn, path: {pyasn} }}\n")
changed = text.replace("  status: 302", "  status: 307")
changed = changed[:changed.index("  - name: artifacts")] + changed[changed.index("defaults:"):]
open(f"{work}/big-old.yaml", "w").write(text)
open(f"{work}/big-new.yaml", "w").write(changed)
PY
  for side in old new; do
    [ -s "$work/big-$side.rdb" ] || "$cli" compile -c "$work/big-$side.yaml" -o "$work/big-$side.rdb" >/dev/null 2>&1
  done
  "$cli" inspect "$work/big-old.rdb" | grep -E '^IPv4' | head -1 | sed 's/^/diff snapshots: /'

  # One diff run: prints "wall_seconds cpu_seconds loop_lines_per_second lines changed_request_share".
  run_diff() {
    local timing
    rm -f "$work/diff.json"
    timing=$( { /usr/bin/time -f "%e %U %S" "$cli" diff "$work/big-old.rdb" "$work/big-new.rdb" --logs "$@" --json --no-progress \
                > "$work/diff.json" || true; } 2>&1 | tail -1)   # exit 1: the snapshots differ
    [ -s "$work/diff.json" ] || { echo "diff failed on $*: $timing" >&2; exit 1; }
    python3 - "$timing" "$work/diff.json" <<'PY'
import json, sys
wall, user, system = map(float, sys.argv[1].split())
traffic = json.load(open(sys.argv[2]))["traffic"]
print(f"{wall:.3f} {user + system:.3f} {traffic['lines_per_second']:.0f} {traffic['lines']['total']} {traffic['changed_request_share']:.4f}")
PY
  }
  best=""
  for attempt in 1 2 3; do
    result=$(run_diff "$log")
    read -r wall cpu rate total share <<< "$result"
    echo "  diff --logs run $attempt: ${wall}s wall, ${cpu}s CPU (snapshot load and diff included), loop $(printf "%'d" "$rate") lines/s, changed share $share"
    if [ -z "$best" ] || awk "BEGIN{exit !($rate > ${best%% *})}"; then best="$rate $wall $cpu $total"; fi
  done
  read -r rate wall cpu total <<< "$best"
  bigrate=$("$cli" analyze -s "$work/big-old.rdb" "$log" --json - -q --no-progress \
            | python3 -c "import json,sys; print(round(json.load(sys.stdin)['lines_per_second']))")
  awk -v total="$total" -v wall="$wall" -v cpu="$cpu" -v rate="$rate" -v bigrate="$bigrate" 'BEGIN {
  printf "diff --logs, 512,621-prefix table:  %.2f M lines/s (decision loop, one core: parse once, decide twice); %.2f M lines/s per CPU second end to end\n", rate / 1e6, total / cpu / 1e6
  printf "analyze, same table:                %.2f M lines/s (analyze loop)\n", bigrate / 1e6
}'
fi
[ -n "${BENCH_DIR:-}" ] || rm -rf "$work"
