# gwx — `make test` and `make demo` work on a fresh machine with no other step:
# they install the Debian packages the tests use, create .venv and install the pinned set.
SHELL := /bin/bash
PY := .venv/bin/python
SYSTEM_TOOLS := openssl pdfsig qpdf softhsm2-util certutil chromium soffice postfix
SYSTEM_PACKAGES := openssl poppler-utils qpdf softhsm2 libsofthsm2 libnss3-tools fonts-wqy-zenhei chromium libreoffice-calc-nogui \
	postgresql postfix

# The pytest plugins the suite uses, named: otherwise pytest loads every installed one (schemathesis's,
# anyio's, platformdirs') and rewrites the asserts of their whole packages in each of its processes —
# the controller and every worker, ~3 s of CPU each. (test_schemathesis runs schemathesis's command.)
# A plugin the suite needs and not named here is not loaded at all (a mark.timeout a no-op): add it
# here AND to NEEDED_PLUGINS in tests/conftest.py, which stops the run when one is missing.
PYTEST_PLUGIN_ARGS := --disable-plugin-autoload -p xdist -p timeout -p hypothesispytest

.PHONY: test test-fast lint pytest bytecode demo bench system-deps venv clean

test: venv system-deps lint pytest

# The quick inner loop: everything but the tests marked slow (real node processes on loopback).
test-fast: venv system-deps lint bytecode
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_PLUGIN_ARGS) -m "not slow"

lint: venv
	.venv/bin/ruff check .

# Three workers on two cores: most of the suite waits on node processes, TLS and fsync rather than
# computing; with two workers the cores were busy 72 % of the run (user+sys 19.4 of 27 core-minutes),
# a third fills the waits (13 min 29 s → 11 min 57 s, docs/performance.md). Each worker picks node
# ports from its own slice (GWX_PORT_SLICE, tests/conftest.py). A module's tests stay on one worker
# (--dist loadscope), so a module-scoped network of nodes is started once. Modules go out in the order
# tests/conftest.py gives them (slow ones first, short ones last to fill the cores until the end),
# not xdist's default of most tests first, which left the few-test network modules for the end.
pytest: venv system-deps bytecode
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_PLUGIN_ARGS) -n 3 --dist loadscope --no-loadscope-reorder

# gwx's own modules compiled once, before the tests start ~700 node processes and gwx commands: where
# PYTHONDONTWRITEBYTECODE is set (as on the CI machine) each of them would otherwise compile from
# source every module it imports that no earlier process wrote a .pyc for (0.1–0.2 s of CPU each).
# The test modules as pytest rewrites their asserts, likewise (tests/rewrite_cache.py): each worker
# rewrote all of tests/ while collecting, 17 s of CPU per worker's collection → 8 s.
bytecode: venv
	$(PY) -m compileall -q -j 0 node pki exchange_protocol adapters > /dev/null
	$(PY) -m tests.rewrite_cache

# GWX_PROFILE=sm make demo, or make demo PROFILE=sm: the same on a 国密 network.
demo: venv system-deps
	$(PY) deploy/demo.py $(if $(PROFILE),--profile $(PROFILE))

bench: venv system-deps
	for b in bench/*.py; do $(PY) $$b --quick || exit 1; done

venv: .venv/.installed

.venv/.installed: requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

system-deps:
	@bash deploy/install-system-deps.sh $(SYSTEM_PACKAGES) -- $(SYSTEM_TOOLS)

clean:
	rm -rf .venv build *.egg-info
