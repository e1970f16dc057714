# Fuzzing on the stable toolchain (no nightly, so no cargo-fuzz here): a
# time-budgeted proptest run of tests/rust/tests/fuzz.rs over Json::parse,
# Registry::restore, the instance, config and filter readers, the etcd
# payload reader (held to the whole-tree reader it replaced), the gRPC
# call's HTTP/2 reading (whole and byte by byte alike) and random
# operation sequences, mutating the corpus in tests/rust/tests/fuzz/corpus/
# and the etcd payloads in tests/fixtures/etcd/.
# Failures are saved as seeds to tests/rust/tests/fuzz/regressions.txt
# (check them in: every run replays them first). It lives in the tests/rust
# crate, not core/, because it reads files and keeps time.
#   make fuzz                     one minute per target
#   make fuzz FUZZ_SECONDS=600    longer
# Release speed with overflow checks and debug assertions on, in a target
# directory of its own so the ordinary release build is not disturbed.
# `make test` runs the same targets for two seconds each (rust-test, debug
# and release).
FUZZ_SECONDS ?= 60

.PHONY: fuzz

fuzz:
	CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
	FUZZ_SECONDS=$(FUZZ_SECONDS) \
	  cargo test -p waypost-scenarios --release --target-dir target/fuzz --test fuzz -- --nocapture --test-threads=2

# Miri over the C binding's unsafe blocks (bindings-c/src/miri_tests.rs
# drives every kind through the C entry points) and the WebAssembly
# allocator's native tests. Installs (once) a nightly toolchain with the
# miri component from rustup; not part of `make test`. The allocator works on integer
# addresses (as in WebAssembly memory), hence permissive provenance; its
# randomised test walks 300 steps under Miri instead of 20 000.
.PHONY: miri

miri:
	rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal --no-self-update
	rustup component add miri --toolchain nightly
	cargo +nightly miri test -q -p waypost-c miri
	MIRIFLAGS=-Zmiri-permissive-provenance cargo +nightly miri test -q -p waypost-wasm --lib heap
