#!/usr/bin/env bash
# Packs the C library twice: a C/C++ tarball (static and shared library,
# headers, a relocatable pkg-config file, the CMake package) and a Go module
# zip that carries its own static library, so neither needs Rust to use.
#   scripts/dist-c.sh OUT VERSION PLATFORM
set -euo pipefail
out=$1 version=$2 platform=$3
root=$(cd "$(dirname "$0")/.." && pwd)
rel=${CARGO_TARGET_DIR:-$root/target}/release
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# C and C++: the layout `make install` gives, with a pkg-config file that
# finds its prefix from where it lies.
c=$stage/waypost-c-$version-$platform
install -d "$c/lib/pkgconfig" "$c/lib/cmake/waypost" "$c/include"
install -m 644 "$rel/libwaypost.a" "$c/lib/libwaypost.a"
install -m 755 "$rel/libwaypost.so" "$c/lib/libwaypost.so.0"
ln -sf libwaypost.so.0 "$c/lib/libwaypost.so"
install -m 644 "$root/bindings-c/include/waypost.h" "$root/bindings-c/include/waypost.hpp" "$c/include/"
sed -e 's|^prefix=@PREFIX@|prefix=${pcfiledir}/../..|' -e "s|@VERSION@|$version|g" \
  "$root/bindings-c/pkgconfig/waypost.pc.in" > "$c/lib/pkgconfig/waypost.pc"
install -m 644 "$root/bindings-c/cmake/waypostConfig.cmake" "$c/lib/cmake/waypost/"
sed -e "s|@VERSION@|$version|g" "$root/bindings-c/cmake/waypostConfigVersion.cmake.in" \
  > "$c/lib/cmake/waypost/waypostConfigVersion.cmake"
tar -C "$stage" -czf "$out/waypost-c-$version-$platform.tar.gz" "$(basename "$c")"

# Go: the module's sources (no tests) with the header and the static
# library inside it; cgo's flags point into the module instead of the
# repository's build tree.
g=$stage/waypost
mkdir -p "$g/include" "$g/lib"
(cd "$root/bindings-c/go" && find . -type f \( -name '*.go' -o -name '*.h' -o -name go.mod \) ! -name '*_test.go' \
  -exec install -D -m 644 {} "$g/{}" \;)
install -m 644 "$root/bindings-c/include/waypost.h" "$g/include/"
install -m 644 "$rel/libwaypost.a" "$g/lib/"
sed -i -e 's|-I${SRCDIR}/../include|-I${SRCDIR}/include|' \
  -e 's|${SRCDIR}/../../target/release/libwaypost.a|${SRCDIR}/lib/libwaypost.a|' "$g/cgo.go"
grep -q 'SRCDIR}/lib/libwaypost.a' "$g/cgo.go" || { echo "dist-c: cgo.go's flags changed; update this script" >&2; exit 1; }
rm -f "$out/waypost-go-$version-$platform.zip"
(cd "$stage" && python3 -m zipfile -c "$out/waypost-go-$version-$platform.zip" waypost)
