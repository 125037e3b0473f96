# databutler — the README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench bench-compare clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py
	$(BIN)/python examples/butler_demo.py
	$(BIN)/python examples/map_demo.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples conftest.py
	$(BIN)/ruff format --check src tests benchmarks examples conftest.py

typecheck: $(STAMP)
	$(BIN)/mypy src

# The suite runs beside a throwaway PostgreSQL server on loopback (installed with apt-get if
# missing), which scripts/postgres.sh always stops afterwards; its URL reaches the registry
# tests in DATABUTLER_TEST_POSTGRES_URL.
pytest: $(STAMP)
	bash scripts/postgres.sh run -- $(BIN)/pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_inmemory.py
	$(BIN)/python benchmarks/bench_file.py
	bash scripts/postgres.sh run -- $(BIN)/python benchmarks/bench_registry.py
	$(BIN)/python benchmarks/bench_butler.py
	$(BIN)/python benchmarks/bench_map.py

# databutler and the LSST Data Butler side by side (not part of `make test`): lsst-daf-butler goes
# into a virtual environment of its own, so that neither project's dependencies reach the other.
COMPARE_VENV := .bench-compare-venv

$(COMPARE_VENV)/.installed:
	$(PYTHON) -m venv $(COMPARE_VENV)
	$(COMPARE_VENV)/bin/pip install --quiet --upgrade pip
	$(COMPARE_VENV)/bin/pip install --quiet lsst-daf-butler numpy
	touch $(COMPARE_VENV)/.installed

bench-compare: $(STAMP) $(COMPARE_VENV)/.installed
	$(BIN)/python benchmarks/bench_compare.py --lsst-python $(COMPARE_VENV)/bin/python

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
