# The core and the Rust examples.
TEST_TARGETS += rust-test
BENCH_TARGETS += rust-bench

.PHONY: rust-test rust-lint rust-bench

rust-lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps -p waypost

rust-test: rust-lint
	cargo test --workspace --release
	cargo run --quiet --release -p waypost-examples --bin quickstart
	cargo run --quiet --release -p waypost-examples --bin fleet > /dev/null

rust-bench:
	cargo bench -p waypost-bench --bench core
	cargo bench -p waypost-bench --bench scale
