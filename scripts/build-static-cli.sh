#!/usr/bin/env bash
# Builds a self-contained `redirector` command (the Swift runtime and Foundation linked in), for the
# Debian package and the container image:
#
#   scripts/build-static-cli.sh [OUTPUT]        (default out/bin/redirector)
#
# It reuses scripts/build.sh's build (.build, same flags, so nothing is recompiled) and links its
# objects once more with -static-stdlib: SwiftPM's --static-swift-stdlib changes every compile
# command too, so it would rebuild the whole dependency graph (~8 min on 2 cores) in a second
# scratch path, while the link alone takes well under a minute. The link command is SwiftPM's own,
# read from its build manifest (.build/release.yaml), with -static-stdlib added and the output
# renamed. Those objects were compiled against the shared runtime, so they name only the top-level
# Foundation libraries; a stub compiled against the static one (swift_static) adds what their static
# archives need in turn (_FoundationICU, _FoundationCollections, ...) through its autolink entries.
# The result is stripped and checked to need no Swift shared library.
set -euo pipefail
cd "$(dirname "$0")/.."
output=${1:-out/bin/redirector}
export PATH=/opt/swift/usr/bin:$PATH

die() { echo "build-static-cli: $*" >&2; exit 1; }

# The same flags as scripts/build.sh: a no-op after it, a full build in a fresh tree.
if ! swift build -c release -Xswiftc -enable-testing --product redirector 2>&1 \
    | { grep -vE "^\[[0-9]+/[0-9]+\] (Compiling|Emitting|Write)" || true; }; then
  die "swift build failed"
fi

# The manifest holds one command per product (`  "C.redirector-<triple>-release.exe":`) with its
# tool, inputs, `    outputs: [".../release/redirector"]`, description and `    args: ["swiftc", ...]`
# (a JSON list of paths and flags without quotes or commas inside them).
manifest=.build/release.yaml
args_line=$(awk '/^  "/ { linked = 0 }
                 /^    outputs: \[".*\/release\/redirector"\]$/ { linked = 1 }
                 linked && /^    args: \[/ { print; exit }' "$manifest")
[ -n "$args_line" ] || die "no link command for redirector in $manifest (SwiftPM's manifest format changed?)"
mapfile -t link < <(grep -o '"[^"]*"' <<<"${args_line#*args: }" | sed 's/^"//; s/"$//')

cmd=() built=""
for ((i = 0; i < ${#link[@]}; i++)); do
  case ${link[i]} in
    -o) built=${link[i + 1]}; cmd+=(-o "$output.tmp"); i=$((i + 1)) ;;
    -rpath=\$ORIGIN) unset 'cmd[${#cmd[@]}-1]' ;;   # with its -Xlinker: no shared library is looked up beside it
    *) cmd+=("${link[i]}") ;;
  esac
done
[ -n "$built" ] && [[ ${cmd[0]} == */swiftc ]] || die "unexpected link command: ${link[*]}"
[ -x "$built" ] || die "$built not built"

mkdir -p "$(dirname "$output")"
stub_dir=$(mktemp -d)
trap 'rm -rf "$stub_dir"' EXIT
printf 'import Foundation\nimport FoundationEssentials\nimport FoundationInternationalization\n' >"$stub_dir/stub.swift"
swiftc -c -O -parse-as-library -module-name RedirectorStaticLinkStub -static-stdlib \
  -resource-dir /opt/swift/usr/lib/swift_static "$stub_dir/stub.swift" -o "$stub_dir/stub.o"
# Debian's hardening link flags (dpkg-buildflags: relro, bindnow).
"${cmd[@]}" "$stub_dir/stub.o" -static-stdlib -Xlinker -z -Xlinker relro -Xlinker -z -Xlinker now
strip --strip-unneeded "$output.tmp"
if ldd "$output.tmp" | grep -i swift; then
  die "$output still needs a Swift shared library"
fi
mv "$output.tmp" "$output"
echo "build-static-cli: built $output ($(stat -c %s "$output") bytes) from $built" >&2
