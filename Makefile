# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test lint bench docs clean

# The demo needs the library and its dashboard only; the tests need every extra and the tools.
$(DEMO_STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[ui]'
	touch $(DEMO_STAMP)

$(STAMP): $(DEMO_STAMP)
	$(PY) -m pip install -q -e '.[dev,postgres,dask,ui,otel]'
	touch $(STAMP)

demo: $(DEMO_STAMP)
	$(PY) examples/demo.py

lint: $(STAMP)
	$(PY) -m ruff format --check src tests examples benchmarks
	$(PY) -m ruff check src tests examples benchmarks
	$(PY) -m mypy
	$(VENV)/bin/lint-imports --no-cache

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet --site-dir site

test: lint docs
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m pip install -q apache-hamilton
	$(PY) -m pytest benchmarks -o addopts="" --benchmark-only -q --benchmark-columns=min,median,ops
	$(PY) benchmarks/compare.py --write docs/benchmarks.md

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache
