#!/usr/bin/env bash
# Builds the Debian binary packages of debian/ into out/deb/ and checks them with lintian.
#
#   scripts/package.sh
#
# `dpkg-buildpackage -b` runs debian/rules in this tree (it calls the project's build scripts, which
# reuse their SwiftPM scratch paths), with Build-Depends checked; the .debs, .buildinfo and .changes
# go to out/deb/ instead of the parent directory. lintian's report, overrides shown, is
# out/deb/lintian.txt: any error fails this script (docs/packaging.md lists what is left and why).
# Needs scripts/setup.sh's packages and the Swift toolchain at /opt/swift.
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/deb

version=$(dpkg-parsechangelog -S Version)
arch=$(dpkg --print-architecture)
rm -rf "$out"
mkdir -p "$out"

echo "package: dpkg-buildpackage -b (redirector $version, $arch)" >&2
REDIRECTOR_DEB_DIR=$PWD/$out dpkg-buildpackage -b -us -uc \
  --buildinfo-file="$out/redirector_${version}_${arch}.buildinfo" --buildinfo-option="-u$out" \
  --changes-file="$out/redirector_${version}_${arch}.changes" --changes-option="-u$out" \
  >"$out/build.log" 2>&1 || { tail -n 60 "$out/build.log" >&2; echo "package: dpkg-buildpackage failed (log: $out/build.log)" >&2; exit 1; }

ls -l "$out"/*.deb >&2
built=$SECONDS
echo "package: dpkg-buildpackage took ${built} s; lintian" >&2
# One run with overridden tags shown (O:, for the record); errors are its E: lines (--fail-on would
# count overridden ones too).
lintian --fail-on none --show-overrides "$out"/*.deb >"$out/lintian.txt" 2>&1 \
  || { cat "$out/lintian.txt" >&2; echo "package: lintian failed to run" >&2; exit 1; }
cat "$out/lintian.txt" >&2
if grep -q '^E: ' "$out/lintian.txt"; then
  echo "package: lintian reports errors" >&2
  exit 1
fi
echo "package: built $(ls "$out"/*.deb | wc -l) packages in $out; lintian: no errors ($((SECONDS - built)) s)" >&2
