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

# honcho gives each process its own PORT; the API's port is passed under another name.
PORT ?= 8080

run: deps-run
	$(PY) -m cpaas init
	CPAAS_HTTP_PORT=$(PORT) exec $(VENV)/bin/honcho start -f Procfile

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

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv >/dev/null; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

bench: deps-test
	@echo "see bench/README.md for each benchmark"

clean:
	rm -rf $(VENV) .pytest_cache
