#!/usr/bin/env bash
# Builds and runs the libFuzzer targets (Fuzz/Targets, seeds in Fuzz/Corpus, see Fuzz/README.md).
#
#   scripts/fuzz.sh list                      the targets
#   scripts/fuzz.sh build [target…]           build only (into .build-fuzz/)
#   scripts/fuzz.sh <target[,target…]|all> [seconds]   fuzz each target for `seconds` (default 60)
#   scripts/fuzz.sh replay [target|all]       run the seeds and every saved regression input once
#
# Targets: address xff snapshot decide (RedirectorCore, + the C ABI for decide) and pyasn csv
# aws-ip-ranges gcp-cloud azure-service-tags k8s-asns location-db config (RedirectorCompiler, Yams).
# Everything is compiled with `swiftc -sanitize=fuzzer,address` (C with -fsanitize=fuzzer-no-link,address).
# New corpus entries go to .build-fuzz/corpus/<target>; crashes to .build-fuzz/crashes/<target>/;
# a results table is printed at the end. Exit status 1 when any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/.build-fuzz
core_targets="address xff snapshot decide"
compiler_targets="pyasn csv aws-ip-ranges gcp-cloud azure-service-tags k8s-asns location-db config"
all_targets="$core_targets $compiler_targets"
sanitize=(-sanitize=fuzzer,address)
swiftflags=(-O -g -parse-as-library -Xcc -mpopcnt)
export SWIFT_BACKTRACE=enable=no   # the Swift backtracer and ASan's reports get in each other's way
export LSAN_OPTIONS=suppressions=$root/Fuzz/lsan.supp:print_suppressions=0

log() { echo "fuzz: $*" >&2; }
filter() { grep -vE "Cannot export local symbol|^\s*$" || true; }

# Rebuilds `$1` (a stamp) when any of the remaining paths is newer.
stale() {
  local stamp=$1; shift
  [ -e "$stamp" ] || return 0
  [ -n "$(find "$@" -newer "$stamp" -type f 2>/dev/null | head -1)" ]
}

build_core() {
  local dir=$out/core
  mkdir -p "$dir"
  if stale "$dir/stamp" Sources/RedirectorCore; then
    log "building RedirectorCore (fuzzer, address)"
    swiftc "${swiftflags[@]}" "${sanitize[@]}" -wmo -module-name RedirectorCore -emit-module \
      -emit-module-path "$dir/RedirectorCore.swiftmodule" -emit-library -static -o "$dir/libRedirectorCore.a" \
      $(find Sources/RedirectorCore -name '*.swift' | sort) 2>&1 | filter
    touch "$dir/stamp"
  fi
}

yams_dir() {
  local yams=.build/checkouts/Yams
  if [ ! -d "$yams/Sources/Yams" ]; then
    log "resolving packages for the Yams sources"
    swift package resolve >/dev/null
  fi
  echo "$root/$yams/Sources"
}

build_compiler() {
  build_core
  local dir=$out/compiler yams
  yams=$(yams_dir)
  mkdir -p "$dir/cyaml"
  if stale "$dir/stamp" Sources/RedirectorCompiler Sources/RedirectorCore "$yams"; then
    log "building CYaml, Yams and RedirectorCompiler (fuzzer, address)"
    rm -f "$dir"/cyaml/*.o
    for source in "$yams"/CYaml/src/*.c; do
      clang -O1 -g -fsanitize=fuzzer-no-link,address -DYAML_DECLARE_STATIC -I "$yams/CYaml/include" \
        -c "$source" -o "$dir/cyaml/$(basename "$source" .c).o"
    done
    ar rcs "$dir/libCYaml.a" "$dir"/cyaml/*.o
    swiftc "${swiftflags[@]}" "${sanitize[@]}" -wmo -module-name Yams -emit-module -emit-module-path "$dir/Yams.swiftmodule" \
      -emit-library -static -o "$dir/libYams.a" -I "$yams/CYaml/include" -Xcc -DYAML_DECLARE_STATIC -DSWIFT_PACKAGE \
      "$yams"/Yams/*.swift 2>&1 | filter
    swiftc "${swiftflags[@]}" "${sanitize[@]}" -wmo -module-name RedirectorCompiler -emit-module \
      -emit-module-path "$dir/RedirectorCompiler.swiftmodule" -emit-library -static -o "$dir/libRedirectorCompiler.a" \
      -I "$out/core" -I "$dir" -I "$yams/CYaml/include" -I Sources/CZlib -Xcc -DYAML_DECLARE_STATIC \
      $(find Sources/RedirectorCompiler -name '*.swift' | sort) 2>&1 | filter
    touch "$dir/stamp"
  fi
}

# binary name for a target
binary() {
  case $1 in
    address|xff|snapshot|decide) echo "$out/bin/fuzz-$1" ;;
    *) echo "$out/bin/fuzz-compiler" ;;
  esac
}

build_target() {
  local target=$1 bin
  bin=$(binary "$target")
  mkdir -p "$out/bin"
  case $target in
    address|xff)
      build_core
      if stale "$bin" "Fuzz/Targets/$target.swift" "$out/core/stamp"; then
        log "linking $bin"
        swiftc "${swiftflags[@]}" "${sanitize[@]}" -I "$out/core" "Fuzz/Targets/$target.swift" \
          "$out/core/libRedirectorCore.a" -o "$bin" 2>&1 | filter
      fi ;;
    snapshot)
      build_core
      if stale "$bin" Fuzz/Targets/snapshot.swift Fuzz/Targets/Common.swift "$out/core/stamp"; then
        log "linking $bin"
        swiftc "${swiftflags[@]}" "${sanitize[@]}" -I "$out/core" Fuzz/Targets/Common.swift Fuzz/Targets/snapshot.swift \
          "$out/core/libRedirectorCore.a" -o "$bin" 2>&1 | filter
      fi ;;
    decide)
      build_core
      if stale "$bin" Fuzz/Targets/decide.swift Fuzz/Targets/Common.swift Sources/RedirectorABI include "$out/core/stamp"; then
        log "linking $bin (with the C ABI)"
        swiftc "${swiftflags[@]}" "${sanitize[@]}" -I "$out/core" -I Sources/CRedirector \
          Fuzz/Targets/Common.swift Fuzz/Targets/decide.swift \
          Sources/RedirectorABI/*.swift "$out/core/libRedirectorCore.a" -o "$bin" 2>&1 | filter
      fi ;;
    *)
      build_compiler
      if stale "$bin" Fuzz/Targets/importers.swift Fuzz/Targets/Common.swift "$out/compiler/stamp"; then
        log "linking $bin"
        local yams
        yams=$(yams_dir)
        swiftc "${swiftflags[@]}" "${sanitize[@]}" -I "$out/core" -I "$out/compiler" -I "$yams/CYaml/include" \
          -I Sources/CZlib -Xcc -DYAML_DECLARE_STATIC Fuzz/Targets/Common.swift Fuzz/Targets/importers.swift \
          "$out/compiler/libRedirectorCompiler.a" "$out/compiler/libYams.a" "$out/compiler/libCYaml.a" \
          "$out/core/libRedirectorCore.a" -lFoundation -lz -o "$bin" 2>&1 | filter
      fi ;;
  esac
  [ -x "$bin" ] || { log "build of $target failed"; exit 2; }
}

# Snapshots the snapshot and decide targets load: the committed real snapshot, the fuzzing policy
# and the registry.k8s.io example over the real data (compiled with the release CLI).
snapshots() {
  local cli=.build/release/redirector
  mkdir -p "$out/snapshots"
  if [ ! -x "$cli" ]; then log "building the CLI"; swift build -c release --product redirector 2>&1 | tail -1 >&2; fi
  if stale "$out/snapshots/decide.rdb" Fuzz/Data "$cli"; then
    "$cli" compile -c Fuzz/Data/decide.yaml -o "$out/snapshots/decide.rdb" >/dev/null 2>&1
  fi
  if stale "$out/snapshots/registry.k8s.io.rdb" examples/registry.k8s.io examples/data "$cli"; then
    "$cli" compile -c examples/registry.k8s.io/redirector.yaml -o "$out/snapshots/registry.k8s.io.rdb" >/dev/null 2>&1
  fi
  echo "$root/Fuzz/Corpus/snapshot/fixtures-main-snapshot:$out/snapshots/decide.rdb:$out/snapshots/registry.k8s.io.rdb"
}

# Options and environment per target.
target_env() {
  case $1 in
    address) echo "-max_len=64" ;;
    xff) echo "-max_len=4096" ;;
    snapshot) echo "-max_len=4096" ;;
    decide) echo "-max_len=8192" ;;
    config) echo "-max_len=8192" ;;
    *) echo "-max_len=16384" ;;
  esac
}

results=()
failed=0

run_target() {
  local target=$1 seconds=$2 bin corpus seeds crashes dict opts logfile runs status
  bin=$(binary "$target")
  corpus=$out/corpus/$target
  seeds=Fuzz/Corpus/$target
  crashes=$out/crashes/$target
  logfile=$out/logs/$target.log
  mkdir -p "$corpus" "$crashes" "$out/logs" "$seeds"
  opts=($(target_env "$target") -rss_limit_mb=2048 -timeout=20 -max_total_time="$seconds" -print_final_stats=1
        -artifact_prefix="$crashes/")
  [ -f "Fuzz/Dict/$target.dict" ] && opts+=(-dict="Fuzz/Dict/$target.dict")
  local snaps
  snaps=$(snapshots)
  log "fuzzing $target for ${seconds}s"
  set +e
  RDR_FUZZ_SNAPSHOTS=$snaps RDR_FUZZ_FORMAT=$target RDR_FUZZ_CONFIG_DIR=$root/Fuzz/Data \
    timeout $((seconds + 120)) "$bin" "${opts[@]}" "$corpus" "$seeds" >"$logfile" 2>&1
  status=$?
  set -e
  runs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$logfile" | grep -oE "[0-9]+$" | tail -1)
  [ -z "$runs" ] && runs=$(grep -oE "^Done [0-9]+ runs" "$logfile" | grep -oE "[0-9]+" | tail -1)
  if [ $status -eq 0 ]; then
    results+=("$(printf '%-20s %10s %8s  %s' "$target" "${runs:-?}" "${seconds}s" "ok")")
  else
    failed=1
    results+=("$(printf '%-20s %10s %8s  %s' "$target" "${runs:-?}" "${seconds}s" "CRASH (exit $status): see $logfile, inputs in $crashes")")
    grep -E "FUZZ FAILURE|ERROR: AddressSanitizer|Fatal error|SUMMARY" "$logfile" | head -5 >&2 || true
  fi
}

replay_target() {
  local target=$1 bin inputs status snaps
  bin=$(binary "$target")
  snaps=$(snapshots)
  inputs=()
  for dir in "Fuzz/Corpus/$target" "Fuzz/Regressions/$target"; do
    [ -d "$dir" ] && inputs+=($(find "$dir" -type f | sort))
  done
  [ ${#inputs[@]} -eq 0 ] && { results+=("$(printf '%-20s %10s %8s  %s' "$target" 0 - "no inputs")"); return; }
  set +e
  RDR_FUZZ_SNAPSHOTS=$snaps RDR_FUZZ_FORMAT=$target RDR_FUZZ_CONFIG_DIR=$root/Fuzz/Data \
    timeout 600 "$bin" -runs=1 -rss_limit_mb=2048 -timeout=20 "${inputs[@]}" >"$out/logs/replay-$target.log" 2>&1
  status=$?
  set -e
  if [ $status -eq 0 ]; then
    results+=("$(printf '%-20s %10s %8s  %s' "$target" "${#inputs[@]}" replay ok)")
  else
    failed=1
    results+=("$(printf '%-20s %10s %8s  %s' "$target" "${#inputs[@]}" replay "FAILED: see $out/logs/replay-$target.log")")
  fi
}

print_results() {
  printf '%-20s %10s %8s  %s\n' target executions time result
  for line in "${results[@]}"; do echo "$line"; done
}

command=${1:-}
case $command in
  list) echo "$all_targets" | tr ' ' '\n' ;;
  build)
    shift
    for target in ${@:-$all_targets}; do build_target "$target"; done ;;
  replay)
    mkdir -p "$out/logs"
    targets=${2:-all}
    [ "$targets" = all ] && targets=$all_targets
    for target in $targets; do build_target "$target"; done
    for target in $targets; do replay_target "$target"; done
    print_results
    exit $failed ;;
  "" ) sed -n '2,14p' "$0"; exit 2 ;;
  *)
    seconds=${2:-60}
    targets=${command//,/ }
    [ "$targets" = all ] && targets=$all_targets
    for target in $targets; do
      echo " $all_targets " | grep -q " $target " || { log "unknown target $target (scripts/fuzz.sh list)"; exit 2; }
    done
    for target in $targets; do build_target "$target"; done
    for target in $targets; do run_target "$target" "$seconds"; done
    print_results
    exit $failed ;;
esac
