# What a user installs on a machine with no Rust toolchain, built once:
#   make dist        target/dist/: the abi3 wheel, the npm tarball, the C/C++
#                    tarball and the Go module zip (with its static library)
#   make dist-test   installs each artifact the way a user would, in a scratch
#                    place with no cargo on PATH, and runs a small program
TEST_TARGETS += dist-test

DIST := $(CURDIR)/target/dist
DIST_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
DIST_PLATFORM := linux-$(shell uname -m)

.PHONY: dist dist-test

dist: c-lib wasm tools-python
	rm -rf $(DIST) && mkdir -p $(DIST)
	@# maturin tags the wheel with the oldest manylinux policy whose glibc
	@# symbol versions the extension satisfies (it checks every symbol).
	cd bindings-python && python3 -m maturin build --quiet --release --out $(DIST)
	cd $(WASM_NPM) && npm pack --quiet --pack-destination $(DIST) > /dev/null
	scripts/dist-c.sh $(DIST) $(DIST_VERSION) $(DIST_PLATFORM)
	@ls -l $(DIST)

dist-test: dist
	scripts/dist-test.sh $(DIST)
