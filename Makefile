# ShopStream data platform: `make run` brings it up locally, `make test` checks it.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3 || echo python3.11)
# The profile: 2 is Airflow 2.10.5 with the Astro SDK (Astro Runtime 12, the default); 3 is
# Airflow 3.3 on the providers' own SQL and S3 parts. Each has its own lock and virtualenv.
AIRFLOW_MAJOR ?= 2
ifeq ($(AIRFLOW_MAJOR),2)
VENV := .venv
STATE := .local
LOCK := requirements.lock
LOCK_INPUT := requirements-dev.in
IMAGE ?= shopstream-platform:local
else ifeq ($(AIRFLOW_MAJOR),3)
VENV := .venv-airflow3
STATE := .local-airflow3
LOCK := requirements-airflow3.lock
LOCK_INPUT := requirements-airflow3.in
IMAGE ?= shopstream-platform:local-airflow3
# The same suite but `make run`'s own platform tests (its start-up, history backfill and browser
# each take a platform of their own, and run on the default profile); Airflow 3's local platform
# is tested by tests/localdev/test_profile.py. test_runtime_install.py replays requirements.txt on
# Astro Runtime 12's packages, which no Airflow 3 package changes: the default profile runs it.
TEST_ARGS := --ignore=tests/localdev/test_run.py --ignore=tests/localdev/test_backfill.py \
	--ignore=tests/localdev/test_browser.py --ignore=tests/test_runtime_install.py
else
$(error AIRFLOW_MAJOR is 2 (Airflow 2.10 with the Astro SDK, the default) or 3 (Airflow 3.3), not '$(AIRFLOW_MAJOR)')
endif
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.synced-lock
# Groups of tests keep one worker each, in file order: `platform` and `platform-2` (the alerting
# and pipeline tests, each half on a platform of its worker's), `make-run` (the local platform's
# own tests, each starting one) and `e2e` (the Dataset chain on a scheduler). pytest-xdist hands
# the groups out largest first (by number of tests): the two platform halves start together and
# `make-run` and `e2e` follow on whichever worker frees first; the single tests fill in. By the
# tests' durations on 2 cores that leaves about the same work on each worker on both profiles,
# where one group of pipelines and make-run tests kept one worker busy long after the other
# (Airflow 2: 2499 s against 1870 s; Airflow 3: about 1800 s against 1300 s).
TEST_WORKERS ?= 2

.PHONY: help venv run stop clean test lint format lock seed airflow bench image image-test

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

# --compile-bytecode: every Airflow process (scheduler, each task, each CLI call) imports Airflow,
# pandas and the providers; without .pyc files, and where PYTHONDONTWRITEBYTECODE is set, each one
# compiles them from source again (parsing the DAGs: 4.6 s of CPU instead of 1.5 s).
$(STAMP): $(LOCK)
	@$(PYTHON) localdev/check_python.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python $(LOCK)
	@touch $@

venv: $(STAMP) ## Create the profile's virtualenv from its lock (.venv; AIRFLOW_MAJOR=3: .venv-airflow3)

run: $(STAMP) ## Start Postgres, mocked S3, the inventory API simulator and Airflow on http://localhost:8080 (AIRFLOW_MAJOR=3: Airflow 3.3)
	$(BIN)/python -m localdev run

stop: ## Stop a platform started by `make run` (from another terminal)
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m localdev stop; else echo "nothing was running"; fi

clean: stop ## Stop the platform and delete its state (.local/; AIRFLOW_MAJOR=3: .local-airflow3/)
	rm -rf $(STATE)

test: $(STAMP) ## Run the whole test suite (TEST_WORKERS=2 pytest-xdist workers; 0 runs them in this process)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=30 $(TEST_ARGS)

lint: $(STAMP) ## Lint and check formatting with ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: $(STAMP) ## Regenerate the profile's lock (requirements.lock; AIRFLOW_MAJOR=3: requirements-airflow3.lock)
ifeq ($(AIRFLOW_MAJOR),2)
	$(BIN)/uv pip compile $(LOCK_INPUT) --python-version 3.11 --universal \
		--custom-compile-command "make lock" --quiet -o $(LOCK)
	cd tests/containers/astro-runtime && ../../../$(BIN)/uv pip compile runtime-packages.txt \
		--python-version 3.11 --universal --custom-compile-command "make lock" --quiet -o runtime-constraints.txt
else
	$(BIN)/uv pip compile $(LOCK_INPUT) --python-version 3.11 --universal \
		--custom-compile-command "AIRFLOW_MAJOR=3 make lock" --quiet -o $(LOCK)
endif

seed: $(STAMP) ## Seed the running platform's source database (idempotent; DAYS=21)
	$(BIN)/python -m localdev.seed --days $(or $(DAYS),21)

# Both profiles, one after the other, in one table (bench/both.py): each runs in its own virtualenv,
# built from its lock when missing or stale.
bench: ## Measure both profiles against the floor, side by side (BENCH_SCALE=10k,100k BENCH_REPEAT=3 BENCH_PROFILES=2,3)
	@$(MAKE) --no-print-directory AIRFLOW_MAJOR=2 venv
	@$(MAKE) --no-print-directory AIRFLOW_MAJOR=3 venv
	.venv/bin/python -m bench.both

airflow: $(STAMP) ## The Airflow CLI against the running platform, e.g. make airflow ARGS="dags list"
	$(BIN)/python -m localdev airflow $(ARGS)

image: $(STAMP) ## Build the deployment image from Dockerfile (AIRFLOW_MAJOR=3: Dockerfile.airflow3; IMAGE=...)
	SHOPSTREAM_IMAGE=$(IMAGE) $(BIN)/python tests/containers/verify_image.py --airflow-major $(AIRFLOW_MAJOR) build

# IMAGE_TEST_ARGS=--no-build checks the image that `make image` built, as CI does.
image-test: $(STAMP) ## Build the image, then check its DAGs, astro dev parse/pytest and an astro dev start stack
	SHOPSTREAM_IMAGE=$(IMAGE) $(BIN)/python tests/containers/verify_image.py --airflow-major $(AIRFLOW_MAJOR) test $(IMAGE_TEST_ARGS)
