# cpaas: two commands.
#   make run   installs what it needs and runs the whole platform on embedded defaults
#   make test  installs what it needs and runs the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RUN_PKGS := redis-server sip-tester espeak-ng sox libsox-fmt-base
TEST_PKGS := $(RUN_PKGS) postgresql

.PHONY: run test deps-run deps-test bench clean

# `honcho start` gives each process its own PORT; the API's port goes under another name.
PORT ?= 8080

run: deps-run
	$(PY) -m cpaas init
	CPAAS_HTTP_PORT=$(PORT) exec $(PY) -m cpaas.supervisor Procfile

test: deps-test
	$(VENV)/bin/pytest $(PYTEST_ARGS)

deps-run: $(VENV)/.installed
	@$(MAKE) --no-print-directory system-packages PKGS="$(RUN_PKGS)"

deps-test: $(VENV)/.installed
	@$(MAKE) --no-print-directory system-packages PKGS="$(TEST_PKGS)"

# Installs only what dpkg does not already have, so a second run costs nothing.
.PHONY: system-packages
system-packages:
	@missing=$$(for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages: $$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# pjsua2-python 2.15.1.post1 has wheels for CPython 3.10-3.12 on x86_64 only, and
# marshmallow 4 needs 3.11: say so before pip can print a resolver trace instead.
SUPPORTED_PYTHONS := 3.11 3.12
.PHONY: python-check
python-check:
	@$(PYTHON) -c 'import platform, sys; \
	  found = "%d.%d" % sys.version_info[:2]; machine = platform.machine(); \
	  ok = found in "$(SUPPORTED_PYTHONS)".split() and machine == "x86_64"; \
	  ok or sys.exit(f"cpaas needs Python 3.11 or 3.12 on x86_64 (pjsua2-python has x86_64 wheels " \
	    f"up to 3.12, marshmallow 4 needs 3.11): Debian 12 and Ubuntu 24.04 work, Debian 13 and " \
	    f"Ubuntu 22.04 do not; $(PYTHON) is Python {found} on {machine} " \
	    f"(make run PYTHON=python3.12 picks another).")'

# Debian keeps ensurepip in python3-venv (`venv --help` works without it, and then
# makes a .venv with no pip); a .venv left without a working pip by an earlier failed
# try is made again.
$(VENV)/.installed: requirements.txt | python-check
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || \
	  $(MAKE) --no-print-directory system-packages PKGS=python3-venv
	@if [ -e $(VENV) ] && ! $(PY) -m pip --version >/dev/null 2>&1; then \
	  echo "$(VENV) has no working pip (left by an earlier failed try): rebuilding it"; \
	  rm -rf $(VENV); fi
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

bench: deps-test
	@echo "see bench/README.md for each benchmark"

clean:
	rm -rf $(VENV) .pytest_cache
