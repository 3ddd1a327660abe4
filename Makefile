# Two commands: `make run` and `make test`. Each creates .venv and installs if needed.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
ARGS    ?=

.PHONY: run test install bench clean lint
run: $(STAMP)
	$(BIN)/reasonloop run --config configs/default.yaml $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS)

install: $(STAMP)

# torch first: pip takes the local CPU wheel; letting another package pick torch pulls CUDA.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/python benchmarks/flywheel.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check reasonloop flows tasks tests benchmarks

clean:
	rm -rf $(VENV)
