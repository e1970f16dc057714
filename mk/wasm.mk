# The WebAssembly core and the npm package `waypost` (bindings-wasm/npm).
#   make wasm        build the package into bindings-wasm/npm/dist
#   make wasm-test   node --test: API, errors, scenarios, types, packaging, Chromium and Firefox
#   make wasm-bench  the JS benchmarks beside a plain-JS registry; the etcd range
#                    fed in Node (both modules) beside the core's figure
TEST_TARGETS += wasm-test
BENCH_TARGETS += wasm-bench etcd-bench

WASM_NPM := bindings-wasm/npm
# The wasm builds' profiles, defined here so the workspace's native profiles
# (which must keep unwinding) stay untouched; wasm32-unknown-unknown cannot
# unwind, so abort costs nothing there. $(call wasm_profile,NAME,OPT-LEVEL).
wasm_profile = \
  --config 'profile.$1.inherits="release"' \
  --config 'profile.$1.opt-level=$2' \
  --config 'profile.$1.lto=true' \
  --config 'profile.$1.codegen-units=1' \
  --config 'profile.$1.panic="abort"'
wasm_raw = $(or $(CARGO_TARGET_DIR),target)/wasm32-unknown-unknown/$1/waypost_wasm.wasm
# The browser's module (dist/waypost_wasm_bg.wasm), under a size budget:
# size-first ("z") for every crate but this binding (3), whose exports
# inline the core's hot paths; the core's pick path is marked for inlining
# where "z" would otherwise leave a call per step. Why these levels and not
# others: BENCHMARKS.md, "WebAssembly (Node)", the opt-level table.
WASM_PROFILE := wasm-release
WASM_PROFILE_FLAGS := $(call wasm_profile,$(WASM_PROFILE),"z") \
  --config 'profile.$(WASM_PROFILE).package.waypost-wasm.opt-level=3'
WASM_RAW := $(call wasm_raw,$(WASM_PROFILE))
# The module Node loads (dist/waypost_wasm_node.wasm): a server does not pay
# for bytes, so it is built for speed, every crate at opt-level 3 with the
# core's `record-reader` (the etcd range walk), and wasm-opt only strips and
# minifies it (BENCHMARKS.md, "Node loads a module built for speed"). From
# the same crate and glue as the browser's module: build.mjs checks that the
# two have the same glue and the same minified names. It alone also builds the Consul registration
# (`consul-registration`, what waypost/consul's registrar sends): through
# an op of an export both modules have, so the glue stays one and the
# browser's module does not grow.
WASM_NODE_PROFILE := wasm-node
WASM_NODE_PROFILE_FLAGS := $(call wasm_profile,$(WASM_NODE_PROFILE),3) --features record-reader,consul-registration,large-services,etcd-grpc
WASM_NODE_RAW := $(call wasm_raw,$(WASM_NODE_PROFILE))
WASM_MINIFY := --strip-debug --strip-producers --strip-target-features --minify-imports-and-exports-and-modules

.PHONY: wasm wasm-deps wasm-test wasm-bench etcd-bench

# npm dev dependencies (wasm-opt from `binaryen`, esbuild, typescript,
# playwright-core for Chromium, puppeteer-core for Firefox), installed from
# the committed lockfile only when it changed. The browsers are Debian's
# (tools-apt): nothing downloads one.
wasm-deps:
	@cd $(WASM_NPM) && if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	  PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error; fi

# wasm-opt --low-memory-unused is safe: Rust puts a 1 MiB stack below its
# data, growing down, so the low 1 KiB is only reached by a stack that has
# already overflowed. Functions that differ only in constants are merged
# first, then the control flow is flattened and rebuilt from scratch
# (--flatten --rereloop) and optimized (-Oz -Oz), twice; what each step
# saves and costs is in BENCHMARKS.md ("WebAssembly (Node)", the size
# steps). The import and export names are minified: build.mjs renames them
# in the glue from the map wasm-opt prints (build/names.json) and checks the
# imports by it.
wasm: wasm-deps tools-rust tools-wasm-bindgen
	cargo build --quiet -p waypost-wasm --target wasm32-unknown-unknown --profile $(WASM_PROFILE) $(WASM_PROFILE_FLAGS)
	cargo build --quiet -p waypost-wasm --target wasm32-unknown-unknown --profile $(WASM_NODE_PROFILE) $(WASM_NODE_PROFILE_FLAGS)
	rm -rf $(WASM_NPM)/build && mkdir -p $(WASM_NPM)/build/node
	wasm-bindgen --target web --out-dir $(WASM_NPM)/build --out-name waypost_wasm $(WASM_RAW)
	$(WASM_NPM)/node_modules/.bin/wasm-opt --merge-similar-functions --flatten --rereloop -Oz -Oz --flatten --rereloop -Oz -Oz --low-memory-unused $(WASM_MINIFY) \
	  $(WASM_NPM)/build/waypost_wasm_bg.wasm -o $(WASM_NPM)/build/waypost_wasm_bg.wasm > $(WASM_NPM)/build/names.json
	wasm-bindgen --target web --out-dir $(WASM_NPM)/build/node --out-name waypost_wasm $(WASM_NODE_RAW)
	$(WASM_NPM)/node_modules/.bin/wasm-opt $(WASM_MINIFY) \
	  $(WASM_NPM)/build/node/waypost_wasm_bg.wasm -o $(WASM_NPM)/build/node/waypost_wasm_bg.wasm > $(WASM_NPM)/build/node/names.json
	node $(WASM_NPM)/scripts/build.mjs

wasm-test: wasm tools-etcd
	cd $(WASM_NPM) && node --test --test-concurrency=1 test/*.test.mjs

# The etcd range's whole Node path (feed_range.mjs, both modules) runs
# beside the core's own figure for the same payload (etcd_range_cpu).
wasm-bench: wasm
	node $(WASM_NPM)/scripts/bench.mjs
	cargo run --quiet --release -p waypost-bench --bin etcd_range_cpu
	node $(WASM_NPM)/scripts/feed_range.mjs

# The etcd mirrors in Node, Python and Go against one local etcd, each beside
# the `etcd3` npm client (gRPC) measured in the same run (bench/stores);
# then the Node start with each module, in fresh processes (mirror_start.mjs).
etcd-bench: wasm tools-etcd python-venv c-lib
	@cd bench/stores && if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	  npm ci --no-audit --no-fund --loglevel=error; fi
	node bench/stores/bench.mjs
	node $(WASM_NPM)/scripts/mirror_start.mjs
