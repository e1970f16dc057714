# The WebAssembly core and the npm package `waypost` (bindings-wasm/npm).
#   make wasm        build the package into bindings-wasm/npm/dist
#   make wasm-test   node --test: API, errors, scenarios, types, packaging, Chromium and Firefox
#   make wasm-bench  the JS benchmarks beside a plain-JS registry
TEST_TARGETS += wasm-test
BENCH_TARGETS += wasm-bench etcd-bench

WASM_NPM := bindings-wasm/npm
# A profile for the wasm build only, defined here so the workspace's native
# profiles (which must keep unwinding) stay untouched; wasm32-unknown-unknown
# cannot unwind, so abort costs nothing there. Size-first ("z") for every
# crate but this binding (3), whose exports inline the core's hot paths.
# The core's pick path is marked for inlining where "z" would otherwise
# leave a call per step: measured, pick at 1 000 runs 31 ns at "z" against
# 37-41 ns at 3, and the module is 25% smaller; heartbeat goes from ~35 to
# ~50 ns (budget 120). "s" or "z" for the binding makes pick 30-70% slower.
WASM_PROFILE := wasm-release
WASM_PROFILE_FLAGS := \
  --config 'profile.$(WASM_PROFILE).inherits="release"' \
  --config 'profile.$(WASM_PROFILE).opt-level="z"' \
  --config 'profile.$(WASM_PROFILE).package.waypost-wasm.opt-level=3' \
  --config 'profile.$(WASM_PROFILE).lto=true' \
  --config 'profile.$(WASM_PROFILE).codegen-units=1' \
  --config 'profile.$(WASM_PROFILE).panic="abort"'
WASM_RAW := $(or $(CARGO_TARGET_DIR),target)/wasm32-unknown-unknown/$(WASM_PROFILE)/waypost_wasm.wasm

.PHONY: wasm wasm-deps wasm-test wasm-bench etcd-bench

# npm dev dependencies (wasm-opt from `binaryen`, esbuild, typescript,
# playwright-core for Chromium, puppeteer-core for Firefox), installed from
# the committed lockfile only when it changed. The browsers are Debian's
# (tools-apt): nothing downloads one.
wasm-deps:
	@cd $(WASM_NPM) && if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	  PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error; fi

# wasm-opt --low-memory-unused (~1% smaller): Rust puts a 1 MiB stack below
# its data, growing down, so the low 1 KiB is only reached by a stack that
# has already overflowed. Functions that differ only in constants are
# merged first, then the control flow is flattened and rebuilt from scratch
# (--flatten --rereloop) and optimized (-Oz -Oz), twice: 0.9 KB gzipped
# less than -Oz alone. Pick, heartbeat and WRR, measured in alternating
# processes against the -Oz build, are unchanged. The import and export names are
# minified (0.45 KB gzipped): build.mjs renames them in the glue from the
# map wasm-opt prints (build/names.json) and checks the imports by it.
wasm: wasm-deps tools-rust tools-wasm-bindgen
	cargo build --quiet -p waypost-wasm --target wasm32-unknown-unknown --profile $(WASM_PROFILE) $(WASM_PROFILE_FLAGS)
	rm -rf $(WASM_NPM)/build && mkdir -p $(WASM_NPM)/build
	wasm-bindgen --target web --out-dir $(WASM_NPM)/build --out-name waypost_wasm $(WASM_RAW)
	$(WASM_NPM)/node_modules/.bin/wasm-opt --merge-similar-functions --flatten --rereloop -Oz -Oz --flatten --rereloop -Oz -Oz --low-memory-unused --strip-debug --strip-producers --strip-target-features \
	  --minify-imports-and-exports-and-modules \
	  $(WASM_NPM)/build/waypost_wasm_bg.wasm -o $(WASM_NPM)/build/waypost_wasm_bg.wasm > $(WASM_NPM)/build/names.json
	node $(WASM_NPM)/scripts/build.mjs

wasm-test: wasm tools-etcd
	cd $(WASM_NPM) && node --test --test-concurrency=1 test/*.test.mjs

wasm-bench: wasm
	node $(WASM_NPM)/scripts/bench.mjs

# The etcd mirrors in Node, Python and Go against one local etcd, each beside
# the `etcd3` npm client (gRPC) measured in the same run (bench/stores).
etcd-bench: wasm tools-etcd python-venv c-lib
	@cd bench/stores && if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	  npm ci --no-audit --no-fund --loglevel=error; fi
	node bench/stores/bench.mjs
