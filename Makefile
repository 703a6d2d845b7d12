# CryoAblation — the two commands a new machine needs: `make demo` and `make test`.
# Only Python 3.11 (or newer), pip and make are assumed; everything else is installed into .venv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: demo test lint verify bench clean help peers

help:
	@echo "make demo    run the built-in demo case, results under out/demo/"
	@echo "make test    install with test extras, build the test peers, run the test suite"
	@echo "make lint    ruff"
	@echo "make verify  full-resolution verification against analytic and measured data (slow)"
	@echo "make bench   speed and memory benchmarks"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install whenever pyproject.toml changes.
$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[test]'
	@touch $@ $(VENV)/.installed-base

demo: $(VENV)/.installed-base
	$(BIN)/cryoablation demo --out out/demo

# The C++ OpenIGTLink reference programs the interop tests talk to (built into .peers/ from
# Debian's packages, nothing installed system-wide; quick when already built).
peers:
	bash Testing/peers/build-peers.sh

test: $(VENV)/.installed-test peers
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The tables first (they print every check, failing or not: the physics, then the observed ice on
# 20 seeded procedures), then the slow full-resolution tests,
# which run even when a row of the table fails; the target fails if either does.
verify: $(VENV)/.installed-test
	$(BIN)/python Testing/physics/verify.py; table=$$?; \
	$(BIN)/python Testing/ice/verify_ice.py; ice=$$?; \
	$(BIN)/python -m pytest -m slow -p no:cacheprovider Testing; tests=$$?; \
	exit $$(( table || ice || tests ))

# Each script prints its wall times, goals and the machine; run them on a quiet machine.
bench: $(VENV)/.installed-base
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/metrics_bench.py
	$(BIN)/python benchmarks/correction_bench.py
	$(BIN)/python benchmarks/scene_bench.py
	$(BIN)/python benchmarks/pythonqt_bench.py
	$(BIN)/python benchmarks/igtl_bench.py
	$(BIN)/python benchmarks/live_bench.py
	$(BIN)/python benchmarks/load_bench.py

clean:
	rm -rf $(VENV) out .peers .pytest_cache .ruff_cache
