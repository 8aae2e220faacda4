# Tether — the two commands a newcomer needs:  `make demo`  and  `make test`.
# Everything else (venv, Kafka jars, PostgreSQL and headless Chromium packages) is set up on
# first use (scripts/infra.py up; Chromium drives the console's browser test and screenshots).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
INFRA  := $(PYTHON) scripts/infra.py
DEMO_ARGS ?=
CHAOS_ARGS ?=
# The chaos suite kills its Kafka and PostgreSQL: its own instance (own directory and ports, never
# the shared one), PostgreSQL durable (fsync and synchronous_commit on).
CHAOS_INFRA := TETHER_INFRA_DIR=/tmp/tether-chaos-infra TETHER_KAFKA_PORT=37092 \
	TETHER_KAFKA_CONTROLLER_PORT=37093 TETHER_POSTGRES_PORT=37432 TETHER_POSTGRES_DURABLE=1

.PHONY: demo chaos test venv infra-up infra-down infra-status lint typecheck bench clean lock

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

## The main job: local Kafka + PostgreSQL + both simulators seeded, the three services, a sync.
demo: venv
	bash scripts/with-infra.sh $(BIN)/tether demo $(DEMO_ARGS)

## The pipeline under faults (≤ 20 min): exact counts, no duplicates, no lost edits, nothing stranded.
chaos: venv
	$(CHAOS_INFRA) bash scripts/with-infra.sh $(BIN)/tether chaos $(CHAOS_ARGS)

## Lint, type check, import contracts and the whole test suite on real Kafka and PostgreSQL.
test: venv
	bash scripts/test.sh

infra-up:
	$(INFRA) up

infra-down:
	$(INFRA) down

infra-status:
	$(INFRA) status

lint: venv
	$(BIN)/ruff check services tests bench scripts
	$(BIN)/ruff format --check services tests bench scripts
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

## requirements.lock (the image's dependencies, with hashes) from pyproject.toml's dependencies.
lock: venv
	$(BIN)/pip install -q --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --no-header --quiet -o requirements.lock.new
	{ sed -n '1,3p' requirements.lock; cat requirements.lock.new; } > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock && rm -f requirements.lock.new

clean:
	$(INFRA) down
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
