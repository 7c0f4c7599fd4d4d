# trainwise: `make demo` and `make test` set everything up from a fresh clone.
# TORCH_SPEC picks the torch build: the default is the CPU build these machines carry;
# GPU users can run e.g. `make test TORCH_SPEC="torch==2.13.0" PIP_EXTRA="--index-url https://download.pytorch.org/whl/cu128"`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
PIP_EXTRA ?=
STAMP := $(VENV)/.installed

.PHONY: setup demo test check lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(PIP_EXTRA) "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/trainwise fit w1-normalized
	@echo
	@echo "Next: '$(BIN)/trainwise recipes' lists every recipe; '$(BIN)/trainwise fit w5-tuned' trains Fashion-MNIST."

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy

# trainwise against a hand-written loop, the tutorial's DataLoader loop, Lightning and Keras (the bench extra:
# installed here only, never by `make test`); BENCH_ARGS="--quick" for a smoke run
BENCH_STAMP := $(VENV)/.bench-installed
BENCH_ARGS ?=

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check $(PIP_EXTRA) -e ".[bench]" "$(TORCH_SPEC)"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/peers.py $(BENCH_ARGS)

check: lint typecheck test

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
