# Self-bootstrapping: `make serve` and `make test` work on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
HOST ?= 127.0.0.1
PORT ?= 8188

.PHONY: serve test install install-test demo-models clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned: 2.13.0 is a local CPU build on these machines (a bare `torch` pulls GBs).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	# Data-only packages, without their heavy dependencies: the CLIP BPE vocabulary ships inside
	# open-clip-torch (we only read its data file); the editor's templates come as JSON packages.
	$(BIN)/pip install -q --no-deps open-clip-torch==3.3.0 \
		comfyui-workflow-templates-core==0.3.388 comfyui-workflow-templates-json==0.1.123
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(STAMP)

install-test: $(TEST_STAMP)

demo-models: $(STAMP)
	$(BIN)/lego demo-models --if-missing

serve: demo-models
	$(BIN)/lego serve --host $(HOST) --port $(PORT)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
