# The Python binding. python-test proves a fresh install: a new virtualenv,
# `pip install ./bindings-python` (pip builds the extension through maturin),
# then pytest (API, errors, threads, every scenario file with transcripts),
# stubtest and mypy --strict against the shipped stubs, and every example.
TEST_TARGETS += python-test
BENCH_TARGETS += python-bench

PY_VENV := target/py-venv
PY_BIN := $(CURDIR)/$(PY_VENV)/bin

.PHONY: python-test python-tools python-venv python-bench

# Debian splits venv/ensurepip into python3-venv.
python-tools:
	@python3 -c 'import ensurepip, venv' 2>/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; }

python-venv: python-tools
	rm -rf $(PY_VENV)
	python3 -m venv $(PY_VENV)
	$(PY_BIN)/python -m pip install -q ./bindings-python
	$(PY_BIN)/python -m pip install -q pytest mypy

python-test: python-venv tools-etcd
	cd bindings-python && $(PY_BIN)/python -m pytest -q -p no:cacheprovider tests
	cd bindings-python && $(PY_BIN)/python -m mypy.stubtest waypost._waypost
	$(PY_BIN)/python -m mypy --strict --no-incremental --cache-dir=/dev/null -p waypost
	MYPYPATH=tests/fakes $(PY_BIN)/python -m mypy --strict --no-incremental --cache-dir=/dev/null bindings-python/tests bindings-python/bench examples/python
	@for example in examples/python/*.py; do \
	  echo "running $$example"; \
	  timeout 120 $(PY_BIN)/python "$$example" > /dev/null || exit 1; \
	done

python-bench: python-venv
	$(PY_BIN)/python bindings-python/bench/bench.py
	$(PY_BIN)/python bindings-python/bench/feed_range.py
