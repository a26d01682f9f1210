#!/usr/bin/env bash
# Core benchmark (issue 2): on the real 512,621-prefix IPv4 and the IPv6 pyasn tables, in one run:
# lookups/s through the C ABI (single call and batch) next to a 1-bit radix tree in C (NGINX geo's
# structure) built from the same prefixes, snapshot bytes per prefix, compile time and load time,
# and both lookups on every core at once (their speed-up over one thread).
# Timings on a shared 2-core machine are noisy: read the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
addresses=${1:-16777216}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

[ -x .build/release/redirector ] && [ -f out/lib/libredirector.so ] || bash scripts/build.sh >/dev/null
swift build -c release -Xswiftc -enable-testing --product RedirectorMatcherBenchmark 2>&1 | grep -E "error|warning:" || true
gcc -O2 -march=x86-64 -Wall -Wextra -Werror -pthread -Iinclude Benchmarks/abi/abi_bench.c \
  -Lout/lib -lredirector -Wl,-rpath,"$PWD/out/lib" -o "$work/abi_bench"

data=/usr/lib/python3/dist-packages/data
for table in "ipasn_20140513.dat.gz 4" "ipasn6_20151101.dat.gz 6"; do
  set -- $table
  zcat "$data/$1" > "$work/prefixes.txt"
  printf 'asnTable: [{format: pyasn, path: %s}]\n' "$data/$1" > "$work/config.yaml"
  echo "== $1 (IPv$2)"
  hyperfine --style basic --runs 5 --warmup 1 --export-json "$work/compile.json" \
    ".build/release/redirector compile -c $work/config.yaml -o $work/table.rdb" 2>/dev/null | grep -E "Time|Range"
  python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results'][0]; print(f'  compile (full table)               {r[\"mean\"]*1e3:10.0f} ms mean of {len(r[\"times\"])}')" "$work/compile.json"
  "$work/abi_bench" "$work/table.rdb" "$work/prefixes.txt" "$2" "$addresses" "$(nproc)"
  echo "  matchers in-process, side by side (format 1 beside format 2):"
  .build/release/RedirectorMatcherBenchmark "$work/prefixes.txt" "$2" "$addresses" | sed 's/^/  /'
  .build/release/redirector inspect "$work/table.rdb" | grep -E '^IPv|^snapshot:|^attributes' | sed 's/^/  inspect: /'
done
