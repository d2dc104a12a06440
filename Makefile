# Two commands, each does its own setup in .venv:
#   make demo   - train, convert, evaluate and deploy on the embedded digits data
#   make test   - the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= demo_out

.PHONY: demo test lint venv examples notebooks clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,bench]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/effkeras demo --out $(OUT) --force

# Two pytest workers, one test file each at a time (module fixtures stay in one process).
PYTEST_WORKERS ?= 2
test: venv
	$(PY) -m ruff check effkeras tests benchmarks
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

lint: venv
	$(PY) -m ruff check effkeras tests benchmarks

# Regenerates the demo's files in tflite_models/ (the suites' subfolders stay) and deploy/.
examples: venv
	rm -rf build/examples
	$(VENV)/bin/effkeras demo --out build/examples
	cp build/examples/tflite_models/* tflite_models/
	rm -rf deploy
	cp -r build/examples/deploy .

# Builds notebooks/*.ipynb from notebooks/src/*.py and executes them (saved outputs are real).
notebooks: venv
	$(PY) notebooks/make_notebooks.py

clean:
	rm -rf $(VENV) build demo_out
