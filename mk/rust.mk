# The core and the Rust examples.
TEST_TARGETS += rust-test
BENCH_TARGETS += rust-bench

.PHONY: rust-test rust-lint rust-bench gen gen-check

# The bindings' copies of the core's tables (the C config struct and limits,
# Go's Config, the Python and TypeScript keyword lists, the name tables, the
# instance's fields as registered and as read back, and its status):
# `make gen` rewrites them, gen-check fails when one is stale.
gen:
	cargo run --quiet -p waypost-gen -- --write

gen-check:
	cargo run --quiet -p waypost-gen

rust-lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	# The core as the bindings build it: without `serde`, which the
	# workspace run turns on (waypost-scenarios' tests use it).
	cargo clippy -p waypost --all-targets --quiet -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps -p waypost

rust-test: rust-lint gen-check
	cargo test --workspace --release
	# Again in a debug build: overflow checks and the debug_assert!s at the
	# core's fallbacks (a corrupt index, a missing key) only run there.
	# waypost-scenarios (tests/rust) holds the core's tests that read files,
	# keep time or spawn threads, so core/ stays sans-IO: the scenario runner,
	# a short run of the fuzz targets (mk/fuzz.mk), the etcd fixtures, pickers
	# on threads and the footprint loop under a counting allocator.
	cargo test -p waypost -p waypost-scenarios
	cargo run --quiet --release -p waypost-examples --bin quickstart
	cargo run --quiet --release -p waypost-examples --bin fleet > /dev/null

rust-bench:
	cargo bench -p waypost-bench --bench core
	cargo bench -p waypost-bench --bench scale
