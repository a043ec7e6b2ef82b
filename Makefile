# `make demo` and `make test` set up everything they need on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint format benchmark services bench-test clean

# mysqlclient (the mariadb extra) is built from source; without a compiler or MariaDB's client
# library the store uses PyMySQL instead, and pytest's header says which driver ran.
$(STAMP): pyproject.toml
	PYTHON=$(PYTHON) scripts/ensure-services.sh venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[standalone,test,mariadb]' || { \
		echo "warning: mysqlclient did not build; MariaDB will run through PyMySQL" >&2; \
		$(BIN)/pip install --quiet -e '.[standalone,test]'; }
	touch $@

services:
	scripts/ensure-services.sh redis

test: $(STAMP) services
	$(BIN)/ruff check dartwing tests benchmarks
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP) services
	$(BIN)/dartwing-jobs demo

lint: $(STAMP)
	$(BIN)/ruff check dartwing tests benchmarks
	$(BIN)/ruff format --check dartwing tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format dartwing tests benchmarks
	$(BIN)/ruff check --fix dartwing tests benchmarks

benchmark: $(STAMP) services
	$(BIN)/python benchmarks/throughput.py $(BENCH_ARGS)

# The Frappe tier: the app's bench tests on an existing bench with dartwing installed on SITE.
# It builds no bench: make bench-test BENCH=/path/to/frappe-bench SITE=site.localhost
BENCH_CMD ?= bench
bench-test:
	@test -n "$(BENCH)" -a -n "$(SITE)" || { echo "usage: make bench-test BENCH=/path/to/frappe-bench SITE=site.localhost" >&2; exit 2; }
	@test -d "$(BENCH)/apps/dartwing" || { echo "$(BENCH)/apps/dartwing is missing: bench get-app first (see README)" >&2; exit 2; }
	# The desk XSS test needs Chromium and the app's bench dev dependencies (Playwright).
	scripts/ensure-services.sh chromium
	cd "$(BENCH)" && $(BENCH_CMD) setup requirements --dev dartwing
	# The desk's shared script (public/js, app_include_js) is served from sites/assets.
	cd "$(BENCH)" && $(BENCH_CMD) build --app dartwing
	# CI=1: without it, Frappe v15's run-tests exits 0 even when tests fail.
	cd "$(BENCH)" && CI=1 $(BENCH_CMD) --site "$(SITE)" run-tests --app dartwing $(BENCH_TEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
