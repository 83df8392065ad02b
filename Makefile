# The two commands a new user runs: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DEMO := examples/retail

.PHONY: demo test lint format schema clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Each install is redone when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[spark,dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/python $(DEMO)/generate.py --out $(DEMO)/data
	cd $(DEMO) && ../../$(BIN)/audience validate && ../../$(BIN)/audience run
	cd $(DEMO) && ../../$(BIN)/audience users create demo --role administrator --password demo --if-missing
	@echo "Console: http://127.0.0.1:8000/ (user demo, password demo)"
	cd $(DEMO) && ../../$(BIN)/audience serve

test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schema: $(VENV)/.installed
	$(BIN)/audience schema --out audience/schema/audience.schema.json

clean:
	rm -rf $(VENV) $(DEMO)/data $(DEMO)/.audience .pytest_cache .ruff_cache
