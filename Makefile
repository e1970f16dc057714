# waypost: one Rust core, bindings for Python, WebAssembly/npm and C/C++/Go.
#   make demo   builds what it needs and runs a real fleet on etcd (SERVE=1 keeps it running)
#   make test   installs every missing tool, then runs every test in every language
#   make bench  runs every benchmark (figures go to BENCHMARKS.md by hand)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

export CARGO_TERM_COLOR := never
export WAYPOST_SCENARIOS ?= $(CURDIR)/tests/scenarios
export WAYPOST_TRANSCRIPTS ?= $(CURDIR)/target/transcripts

# Each binding's .mk file appends its targets to these lists.
TEST_TARGETS :=
BENCH_TARGETS :=

include mk/tools.mk
include mk/rust.mk
-include mk/python.mk
-include mk/wasm.mk
-include mk/c.mk
-include mk/dist.mk
-include mk/demo.mk

.PHONY: help test bench transcripts-clean compare-transcripts

help:
	@echo "make demo   - etcd, services in Python, Node and Go, a gateway and a dashboard: a scripted story"
	@echo "make demo SERVE=1 - the same, then the fleet keeps running until Ctrl-C"
	@echo "make demo-sim - the fleet simulation in virtual time (examples/rust/src/fleet.rs)"
	@echo "make test   - install missing tools and run every test in every language"
	@echo "make bench  - run every benchmark"

transcripts-clean:
	rm -rf "$(WAYPOST_TRANSCRIPTS)"

# Sub-makes keep the order: tools first, then each language, then the
# cross-language transcript comparison.
# The Go suite's cross-language fleet test needs the Python virtualenv and
# the npm package the earlier targets build: required here, skipped alone.
test: tools transcripts-clean
	WAYPOST_FLEET_REQUIRED=1 $(MAKE) --no-print-directory $(TEST_TARGETS)
	$(MAKE) --no-print-directory compare-transcripts   # last line: "transcripts: N passed, N failed"

compare-transcripts:
	python3 scripts/compare-transcripts.py "$(WAYPOST_TRANSCRIPTS)"

bench: tools
	$(MAKE) --no-print-directory $(BENCH_TARGETS)
