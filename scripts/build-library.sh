#!/usr/bin/env bash
# Builds the self-contained C library: out/lib/libredirector.so and out/include/redirector.h.
#
# The Swift runtime is linked statically (-static-stdlib), so the library needs no Swift toolchain
# at run time; a version script exports only the rdr_* ABI; the result is stripped.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scratch=.build-lib

swift build -c release --scratch-path "$scratch" --product RedirectorABI \
  -Xswiftc -static-stdlib \
  -Xlinker --version-script="$root/include/redirector.map" \
  -Xlinker -soname=libredirector.so \
  -Xlinker --exclude-libs=ALL

mkdir -p out/lib out/include
install -m 0755 "$scratch/release/libRedirectorABI.so" out/lib/libredirector.so
strip --strip-unneeded out/lib/libredirector.so
install -m 0644 include/redirector.h out/include/redirector.h
echo "built $root/out/lib/libredirector.so ($(stat -c %s out/lib/libredirector.so) bytes)" >&2
