# One command surface for people and CI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# `make run WORKERS=4`: how many worker processes; unset means one per CPU core.
WORKERS ?=

.PHONY: install browser run test test-faults lint fmt typecheck check bench bench-smoke \
	bench-chaos bench-chaos-smoke bench-scale-smoke clean lock lock-upgrade

install: $(STAMP)

# Exactly the locked versions, each checked against its hash; then the project itself,
# built with the locked setuptools (no build isolation: nothing unlocked is fetched).
$(STAMP): pyproject.toml requirements-dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

## Re-resolve the locks after a change to pyproject.toml, keeping every pin that still fits.
LOCK := $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet
lock: install
	$(LOCK) -o requirements.lock
	$(LOCK) --extra dev -o requirements-dev.lock

## Move every pin to the newest release the floors allow (then run `make check`).
lock-upgrade: install
	$(LOCK) --upgrade -o requirements.lock
	$(LOCK) --upgrade --extra dev -o requirements-dev.lock

## Start Postgres, Temporal (+ Web UI), S3, migrations, workers and the API on 127.0.0.1.
run: install
	$(BIN)/python -m devstack.run $(if $(WORKERS),--workers $(WORKERS))

## Debian's Chromium for the browser tests (Playwright drives it; its own download cannot work here).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| echo "could not install chromium: the browser tests will be skipped"

## The whole suite, against real services started on free ports.
test: install browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Kill workers, stop S3, Postgres and Temporal mid-batch; check nothing is lost or doubled.
test-faults: install
	$(BIN)/python -m pytest -m faults tests/faults $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy .

check: lint typecheck test test-faults

clean:
	rm -rf $(VENV) .venv-thumbor build *.egg-info .pytest_cache .mypy_cache .ruff_cache

## CPU cost of the resize pipeline against bare-Pillow baselines measured in the same run.
bench: install
	$(BIN)/python -m bench.compute
	$(BIN)/python -m bench.facts
	$(BIN)/python -m bench.formats
	$(BIN)/python -m bench.e2e
	$(BIN)/python -m bench.ingress
	$(BIN)/python -m bench.listing
	$(BIN)/python -m bench.soak
	$(BIN)/python -m bench.webhooks
	$(BIN)/python -m bench.reprocess

## One quick pass of the benchmark, so it cannot rot (CI runs it).
bench-smoke: install
	$(BIN)/python -m bench.compute --repeats 1 --output $(VENV)/bench-smoke.json
	$(BIN)/python -m bench.facts --repeats 1 --output $(VENV)/bench-facts-smoke.json
	$(BIN)/python -m bench.formats --repeats 1 --avif-efforts 0 --output $(VENV)/bench-formats-smoke.json
	$(BIN)/python -m bench.e2e --images 2 --rounds 1 --output $(VENV)/bench-e2e-smoke.json

## 5 minutes of 1.5 uploads/s while workers are killed (every 40 s) and one is frozen, S3
## and Postgres restart; then audit Postgres, S3, the events and Temporal against each other.
bench-chaos: install
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

## The same soak in 75 s, with every fault once or twice (CI runs it; it fails on any finding).
bench-chaos-smoke: install
	$(BIN)/python -m bench.chaos --duration 75 --kill-every 25 --freeze-at 10 --freeze-for 15 \
		--s3-restart-at 35 --pg-restart-at 55 --key chaos-smoke --output $(VENV)/bench-chaos-smoke.json

## Short passes of the listing bench (20 000 rows) and the API soak (30 s), for CI (~2 min).
bench-scale-smoke: install
	$(BIN)/python -m bench.listing --rows 20000 --repeats 20 --results-key listing-smoke
	$(BIN)/python -m bench.soak --duration 30 --pollers 5 --results-key soak-smoke
