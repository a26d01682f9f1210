#!/usr/bin/env bash
# Builds ngx_http_redirector_module.so for the packaged (Debian) nginx.
#
#   scripts/build-nginx-module.sh [--compile-only]
#
# Configures a copy of nginx-dev's tree (/usr/share/nginx/src) with Debian's own
# flags (conf_flags, the packaged binary's --with-cc-opt/--with-ld-opt) plus
# --with-compat --add-dynamic-module=nginx/, runs `make modules` (nginx's -Werror
# applies), and puts the module next to a copy of libredirector.so:
#
#   out/nginx/ngx_http_redirector_module.so
#   out/nginx/libredirector.so
#
# The module finds the library through rpath $ORIGIN, so both files can be
# installed together anywhere, e.g. /usr/lib/nginx/modules.
#
# Needs out/lib/libredirector.so (scripts/build-library.sh) unless --compile-only,
# which only compiles the module's object file (a check of the C code against
# include/redirector.h and the nginx headers).
#
# Environment: NGINX_SRC (default /usr/share/nginx/src), REDIRECTOR_LIB_DIR
# (default out/lib), REDIRECTOR_NDK_DIR (default /usr/share/nginx-ndk/src; "no"
# builds without set_redirector_target), OUT_DIR (default out/nginx).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
nginx_src=${NGINX_SRC:-/usr/share/nginx/src}
lib_dir=${REDIRECTOR_LIB_DIR:-$root/out/lib}
out_dir=${OUT_DIR:-$root/out/nginx}
compile_only=0

for arg in "$@"; do
  case $arg in
    --compile-only) compile_only=1 ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-nginx-module: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

die() { echo "build-nginx-module: $*" >&2; exit 1; }

[ -f "$nginx_src/conf_flags" ] || die "$nginx_src/conf_flags not found: install nginx-dev (scripts/setup.sh)"
command -v nginx >/dev/null || die "nginx not found: install nginx (scripts/setup.sh)"
lib_dir=$(cd "$lib_dir" 2>/dev/null && pwd || echo "$lib_dir")
if [ "$compile_only" = 0 ] && [ ! -f "$lib_dir/libredirector.so" ]; then
  die "$lib_dir/libredirector.so not found: run scripts/build-library.sh first"
fi

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
build_dir=$out_dir/build
src_copy=$build_dir/nginx-src

# nginx's configure writes objs/ and Makefile into the current (source) directory,
# so work on a private copy of the (headers-only) nginx-dev tree.
rm -rf "$src_copy"
mkdir -p "$build_dir"
cp -a "$nginx_src" "$src_copy"

# Debian's configure flags (a bash array) and the packaged binary's compiler and
# linker options, so the module matches the nginx that will load it.
# shellcheck disable=SC1091
. "$src_copy/conf_flags"
nginx_v=$(nginx -V 2>&1)
cc_opt=$(sed -n "s/.*--with-cc-opt='\([^']*\)'.*/\1/p" <<<"$nginx_v" | sed 's/-ffile-prefix-map=[^ ]*//')
ld_opt=$(sed -n "s/.*--with-ld-opt='\([^']*\)'.*/\1/p" <<<"$nginx_v")
nginx_version=$(sed -n 's|^nginx version: nginx/\([0-9.]*\).*|\1|p' <<<"$nginx_v")
src_version=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$src_copy/src/core/nginx.h")
[ "$nginx_version" = "$src_version" ] || \
  die "nginx $nginx_version is installed but nginx-dev holds $src_version"

echo "build-nginx-module: configuring against nginx $src_version in $src_copy" >&2
(
  cd "$src_copy"
  export REDIRECTOR_LIB_DIR=$lib_dir
  ./configure "${NGX_CONF_FLAGS[@]}" \
    --with-cc-opt="${cc_opt:-}" --with-ld-opt="${ld_opt:-}" \
    --with-compat --add-dynamic-module="$root/nginx" >"$build_dir/configure.log" 2>&1 \
    || { tail -n 30 "$build_dir/configure.log" >&2; exit 1; }
)

jobs=$(nproc 2>/dev/null || echo 2)
if [ "$compile_only" = 1 ]; then
  make -f "$src_copy/objs/Makefile" -C "$src_copy" -j "$jobs" \
    objs/addon/nginx/ngx_http_redirector_module.o
  echo "build-nginx-module: compiled $src_copy/objs/addon/nginx/ngx_http_redirector_module.o" >&2
  exit 0
fi

# `make -f` needs an absolute path (DESIGN.md §7).
make -f "$src_copy/objs/Makefile" -C "$src_copy" -j "$jobs" modules

install -m 0644 "$src_copy/objs/ngx_http_redirector_module.so" "$out_dir/ngx_http_redirector_module.so"
install -m 0644 "$lib_dir/libredirector.so" "$out_dir/libredirector.so"

# The module must find the library next to itself and carry no unresolved
# dependency other than the NDK symbols (weak) and nginx's own.
if ! readelf -d "$out_dir/ngx_http_redirector_module.so" | grep -q 'R.*PATH.*\$ORIGIN'; then
  die "module lacks rpath \$ORIGIN"
fi

echo "build-nginx-module: built" >&2
ls -l "$out_dir/ngx_http_redirector_module.so" "$out_dir/libredirector.so" >&2
