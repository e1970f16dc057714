# The C ABI library (bindings-c) and its C, C++ and Go users.
#   make c-lib                  release libwaypost.a / libwaypost.so
#   make c-test                 header check, C tests (valgrind, ASan/UBSan), C++ (GoogleTest),
#                               Go (vet, -race, scenarios), examples, install + pkg-config + CMake
#   make install PREFIX=/usr/local
#   make c-bench
TEST_TARGETS += c-test
BENCH_TARGETS += c-bench etcd-soak

PREFIX ?= /usr/local
C_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
C_OUT := $(CURDIR)/target/c
C_REL := $(CURDIR)/target/release
C_DBG := $(CURDIR)/target/debug
C_INC := $(CURDIR)/bindings-c/include
C_LIBS := -lpthread -ldl -lm
C_WARN := -std=c11 -Wall -Wextra -Werror
# Standard library only: nothing is ever downloaded.
GO_ENV := GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOPATH=$(CURDIR)/target/go GOCACHE=$(CURDIR)/target/go-cache

.PHONY: etcd-soak c-tools c-lib c-lib-test c-header c-unit c-cpp c-go c-examples c-install-test c-test c-bench install

c-tools: tools-apt
	@command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }

c-lib:
	cargo build -q -p waypost-c --release

# Debug build with the test-only panic entry point, for the C and C++ suites.
c-lib-test:
	cargo build -q -p waypost-c --features panic-test

c-header: tools-cbindgen
	cd bindings-c && cbindgen --quiet --verify --config cbindgen.toml --crate waypost-c --output include/waypost.h

c-unit: c-tools c-lib-test
	@mkdir -p $(C_OUT)
	cc $(C_WARN) -g -DWAYPOST_PANIC_TEST -I$(C_INC) bindings-c/tests/c/test_waypost.c $(C_DBG)/libwaypost.a $(C_LIBS) -o $(C_OUT)/test_waypost
	cc $(C_WARN) -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
	  -DWAYPOST_PANIC_TEST -I$(C_INC) bindings-c/tests/c/test_waypost.c $(C_DBG)/libwaypost.a $(C_LIBS) -o $(C_OUT)/test_waypost_asan
	RUST_BACKTRACE=0 valgrind -q --fair-sched=yes --leak-check=full --error-exitcode=1 $(C_OUT)/test_waypost 2> >(grep -v -e '^thread' -e '^note:' -e '^forced' -e '^$$' >&2)
	RUST_BACKTRACE=0 $(C_OUT)/test_waypost_asan 2> >(grep -v -e '^thread' -e '^note:' -e '^forced' -e '^$$' >&2)

c-cpp: c-tools c-lib-test
	cmake -S bindings-c/tests/cpp -B $(C_OUT)/cpp -DWAYPOST_LIB=$(C_DBG)/libwaypost.a -DWAYPOST_PANIC_TEST=ON >/dev/null
	cmake --build $(C_OUT)/cpp -j2 >/dev/null
	RUST_BACKTRACE=0 $(C_OUT)/cpp/waypost_cpp_tests --gtest_brief=1 2> >(grep -v -e '^thread' -e '^note:' -e '^forced' -e '^$$' >&2)

c-go: c-tools c-lib tools-etcd
	cd bindings-c/go && $(GO_ENV) go vet ./...
	cd bindings-c/go && $(GO_ENV) go test -race -count=1 ./...

c-examples: c-tools c-lib
	@mkdir -p $(C_OUT)
	@# The README's C example, compiled and run leak-free as printed.
	{ echo '#include "waypost.h"'; echo 'int main(void) {'; \
	  awk '/^## C, C\+\+ and Go/{f=1} f&&/^```c$$/{c=1;next} c&&/^```$$/{exit} c' README.md; echo 'return 0; }'; } > $(C_OUT)/readme.c
	cc $(C_WARN) -I$(C_INC) $(C_OUT)/readme.c $(C_REL)/libwaypost.a $(C_LIBS) -o $(C_OUT)/readme && \
	  valgrind -q --leak-check=full --error-exitcode=1 $(C_OUT)/readme
	cc $(C_WARN) -I$(C_INC) examples/c/main.c $(C_REL)/libwaypost.a $(C_LIBS) -o $(C_OUT)/example-c && $(C_OUT)/example-c > /dev/null
	c++ -std=c++17 -Wall -Wextra -Werror -I$(C_INC) examples/cpp/main.cpp $(C_REL)/libwaypost.a $(C_LIBS) -o $(C_OUT)/example-cpp && $(C_OUT)/example-cpp > /dev/null
	cd examples/go && $(GO_ENV) go vet . && $(GO_ENV) go run . > /dev/null

# Installs into a scratch prefix, then builds the examples against that copy
# through pkg-config and through CMake's find_package(waypost).
c-install-test: c-tools c-lib
	rm -rf $(C_OUT)/prefix $(C_OUT)/example-cmake-c $(C_OUT)/example-cmake-cpp
	$(MAKE) --no-print-directory install PREFIX=$(C_OUT)/prefix >/dev/null
	PKG_CONFIG_PATH=$(C_OUT)/prefix/lib/pkgconfig; export PKG_CONFIG_PATH; \
	  cc $(C_WARN) examples/c/main.c $$(pkg-config --cflags --libs waypost) -Wl,-rpath,$(C_OUT)/prefix/lib -o $(C_OUT)/example-pc && \
	  $(C_OUT)/example-pc > /dev/null
	cmake -S examples/c -B $(C_OUT)/example-cmake-c -DCMAKE_PREFIX_PATH=$(C_OUT)/prefix >/dev/null
	cmake --build $(C_OUT)/example-cmake-c >/dev/null && $(C_OUT)/example-cmake-c/fleet > /dev/null
	cmake -S examples/cpp -B $(C_OUT)/example-cmake-cpp -DCMAKE_PREFIX_PATH=$(C_OUT)/prefix >/dev/null
	cmake --build $(C_OUT)/example-cmake-cpp >/dev/null && $(C_OUT)/example-cmake-cpp/fleet > /dev/null

c-test: c-header c-unit c-cpp c-go c-examples c-install-test
	@echo "c-test: C, C++ and Go suites passed"

install: c-lib
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/lib/cmake/waypost $(DESTDIR)$(PREFIX)/include
	install -m 644 $(C_REL)/libwaypost.a $(DESTDIR)$(PREFIX)/lib/libwaypost.a
	install -m 755 $(C_REL)/libwaypost.so $(DESTDIR)$(PREFIX)/lib/libwaypost.so.0
	ln -sf libwaypost.so.0 $(DESTDIR)$(PREFIX)/lib/libwaypost.so
	install -m 644 bindings-c/include/waypost.h bindings-c/include/waypost.hpp $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(C_VERSION)|g' bindings-c/pkgconfig/waypost.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/waypost.pc
	install -m 644 bindings-c/cmake/waypostConfig.cmake $(DESTDIR)$(PREFIX)/lib/cmake/waypost/waypostConfig.cmake
	sed -e 's|@VERSION@|$(C_VERSION)|g' bindings-c/cmake/waypostConfigVersion.cmake.in > $(DESTDIR)$(PREFIX)/lib/cmake/waypost/waypostConfigVersion.cmake

c-bench: c-lib
	@mkdir -p $(C_OUT)
	cc -std=c11 -O2 -I$(C_INC) bindings-c/bench/bench.c $(C_REL)/libwaypost.a $(C_LIBS) -o $(C_OUT)/bench-c
	$(C_OUT)/bench-c
	cd bindings-c/go && $(GO_ENV) go test -run '^$$' -bench . -benchtime 1s -count 1 .

# 1 000 registrants keeping their leases alive against one local etcd for
# 60 s: no lease may be lost; logs the CPU the registrars used.
etcd-soak: c-tools c-lib tools-etcd
	cd bindings-c/go && $(GO_ENV) WAYPOST_SOAK_SECONDS=$${WAYPOST_SOAK_SECONDS:-60} go test -count=1 -v -run TestSoakRegistrants -timeout 300s ./etcd/ | grep -E 'registrants|^(ok|FAIL|---)'

