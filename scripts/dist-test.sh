#!/usr/bin/env bash
# Installs each artifact of `make dist` the way a user would, in a scratch
# directory, with no Rust toolchain on PATH, and runs a small program
# through it. Every check must print its expected answer.
#   scripts/dist-test.sh DIST
set -euo pipefail
dist=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# No cargo, rustc or maturin: only the system's tools.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
python=$(command -v python3.11 || command -v python3)
if [[ $python != /usr/* ]]; then python=$(readlink -f "$(command -v python3)"); fi
command -v cargo >/dev/null && { echo "dist-test: cargo is still on PATH" >&2; exit 1; }
passed=0
check() { # name, expected, actual
  if [ "$2" = "$3" ]; then echo "dist-test: $1 ok"; passed=$((passed + 1));
  else echo "dist-test: $1 printed '$3', expected '$2'" >&2; exit 1; fi
}

# Python: the wheel into a fresh virtualenv, no index, no build.
wheel=$(ls "$dist"/waypost-*-abi3-manylinux_*_x86_64.whl)
"$python" -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install -q --no-index --no-deps "$wheel"
out=$(cd "$scratch" && "$scratch/venv/bin/python" -c '
import waypost
reg = waypost.Registry(ttl_ms=10_000, seed=7)
reg.register("api-1", "api", "10.0.0.1", 8080, now=0)
print(reg.pick("api", now=1).id)')
check "wheel ($(basename "$wheel"))" api-1 "$out"

# npm: the tarball into a fresh project, from ESM, CommonJS and TypeScript.
tgz=$(ls "$dist"/waypost-*.tgz)
app=$scratch/app
mkdir -p "$app"
echo '{"name":"app","version":"1.0.0","private":true}' > "$app/package.json"
(cd "$app" && npm install --offline --no-audit --no-fund --loglevel=error "$tgz" > /dev/null)
use='const reg = new Registry({ ttlMs: 10000, seed: 7 });
reg.register({ id: "api-1", service: "api", address: "10.0.0.1", port: 8080 }, 0);
console.log(reg.pick("api", "round_robin", 1).instance.id);'
printf 'import { Registry } from "waypost";\n%s\n' "$use" > "$app/esm.mjs"
printf 'const { Registry } = require("waypost");\n%s\n' "$use" > "$app/cjs.cjs"
printf 'import { Registry, type Instance } from "waypost";\n%s\nconst first: Instance = reg.pick("api", "random", 2).instance;\nexport default first.port;\n' "$use" > "$app/types.ts"
check "npm ESM" api-1 "$(cd "$app" && node esm.mjs)"
check "npm CommonJS" api-1 "$(cd "$app" && node cjs.cjs)"
tsc=$root/bindings-wasm/npm/node_modules/.bin/tsc
(cd "$app" && "$tsc" --noEmit --strict --module nodenext --moduleResolution nodenext --target es2022 types.ts)
check "npm TypeScript" ok ok

# C and C++: the tarball through pkg-config and through CMake.
tar -C "$scratch" -xzf "$(ls "$dist"/waypost-c-*.tar.gz)"
prefix=$(ls -d "$scratch"/waypost-c-*)
cc -std=c11 "$root/examples/c/main.c" $(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs waypost) \
  -Wl,-rpath,"$prefix/lib" -o "$scratch/c-pc"
"$scratch/c-pc" > /dev/null
check "C via pkg-config" ok ok
cmake -S "$root/examples/cpp" -B "$scratch/cpp" -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build "$scratch/cpp" > /dev/null
"$scratch/cpp/fleet" > /dev/null
check "C++ via CMake" ok ok

# Go: the module zip through a replace from a scratch module.
(cd "$scratch" && "$python" -m zipfile -e "$(ls "$dist"/waypost-go-*.zip)" go-mod)
mkdir -p "$scratch/goapp"
cp "$root/examples/go/main.go" "$scratch/goapp/"
printf 'module app\n\ngo 1.19\n\nrequire example.invalid/waypost v0.0.0\n\nreplace example.invalid/waypost => %s\n' \
  "$scratch/go-mod/waypost" > "$scratch/goapp/go.mod"
(cd "$scratch/goapp" && GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOPATH=$scratch/gopath \
  GOCACHE=$scratch/gocache go run . > /dev/null)
check "Go module zip" ok ok

echo "dist-test: $passed passed, 0 failed"
