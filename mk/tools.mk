# Installs what a fresh machine lacks; every step is skipped when already done.
APT_PACKAGES := golang-go cmake libgtest-dev chromium firefox-esr pkg-config etcd-server etcd-client
WASM_BINDGEN_VERSION = $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"/\1/p;q}' Cargo.lock 2>/dev/null)
CBINDGEN_VERSION := 0.29.4

.PHONY: tools tools-apt tools-etcd tools-rust tools-wasm-bindgen tools-cbindgen tools-python

tools: tools-apt tools-rust tools-python tools-wasm-bindgen tools-cbindgen

tools-apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The Python, Node and Go suites start their own etcd (free loopback ports,
# a temporary data directory) from Debian's etcd-server; nothing runs as a service.
tools-etcd:
	@command -v etcd >/dev/null && command -v etcdctl >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null; }

tools-rust:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

# wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly.
tools-wasm-bindgen:
	@v="$(WASM_BINDGEN_VERSION)"; if [ -z "$$v" ]; then cargo generate-lockfile -q; v=$$(sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"/\1/p;q}' Cargo.lock); fi; \
	if [ -n "$$v" ] && ! wasm-bindgen --version 2>/dev/null | grep -q " $$v$$"; then \
	  echo "installing wasm-bindgen-cli $$v"; cargo install -q wasm-bindgen-cli --version "$$v"; fi

tools-cbindgen:
	@cbindgen --version 2>/dev/null | grep -q " $(CBINDGEN_VERSION)$$" || cargo install -q cbindgen --version $(CBINDGEN_VERSION)

tools-python:
	@python3 -c 'import maturin' 2>/dev/null || command -v maturin >/dev/null || python3 -m pip install -q maturin
	@python3 -c 'import pytest, mypy' 2>/dev/null || python3 -m pip install -q pytest mypy
