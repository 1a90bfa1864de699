# Two commands for a fresh machine:
#   make demo   serve the bundled models over gRPC and stylise the sample images (light install)
#   make test   lint and run the test suite (full install: torch, Lightning, onnx, grpc)
# and, on a machine with a browser, `make web`: the live camera page (light install).
PYTHON ?= python3
WEB_PORT ?= 8080
SERVE_VENV := .venv-serve
DEV_VENV := .venv

.PHONY: demo web test test-fast lint typecheck bench gpu-check clean

demo: $(SERVE_VENV)/.installed
	$(SERVE_VENV)/bin/stylecast demo --models-dir models --out demo-out
	@echo "Live camera page: run 'make web', then open http://localhost:$(WEB_PORT)/"

# The browser camera page (stylecast web) until Ctrl-C; its last line is the page's URL.
web: $(SERVE_VENV)/.installed
	$(SERVE_VENV)/bin/stylecast web --models-dir models --port $(WEB_PORT)

test: lint typecheck
	$(DEV_VENV)/bin/python -m pytest

# The suite without the tests marked slow (end-to-end processes, real training runs).
test-fast: lint typecheck
	$(DEV_VENV)/bin/python -m pytest -m "not slow"

lint: $(DEV_VENV)/.installed
	$(DEV_VENV)/bin/ruff check .
	$(DEV_VENV)/bin/ruff format --check .

typecheck: $(DEV_VENV)/.installed
	$(DEV_VENV)/bin/mypy

bench: $(DEV_VENV)/.installed
	$(DEV_VENV)/bin/python benchmarks/bench_training.py
	$(DEV_VENV)/bin/python benchmarks/bench_inference.py
	$(DEV_VENV)/bin/python benchmarks/bench_grpc.py

# On a GPU machine: installs onnxruntime-gpu and TensorRT into .venv itself (not through
# .venv/.installed, which would put the CPU onnxruntime back), then prints one table.
gpu-check:
	bash benchmarks/gpu_check.sh $(GPU_CHECK_ARGS)

$(SERVE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install --quiet --upgrade pip
	$(SERVE_VENV)/bin/pip install --quiet -e '.[serve]'
	touch $@

$(DEV_VENV)/.installed: pyproject.toml examples/node/package-lock.json
	$(PYTHON) -m venv $(DEV_VENV)
	$(DEV_VENV)/bin/pip install --quiet --upgrade pip
	$(DEV_VENV)/bin/pip install --quiet -e '.[all]'
	# Triton's ModelConfig schema for the config.pbtxt tests. Without its extras: they pin
	# protobuf < 7, which the generated stubs cannot use; the schema module needs none.
	$(DEV_VENV)/bin/pip install --quiet --no-deps 'tritonclient==2.73.0'
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix examples/node --no-audit --no-fund; else echo "npm not found: skipping the Node example client (examples/node); its tests will skip"; fi
	touch $@

clean:
	rm -rf $(SERVE_VENV) $(DEV_VENV) demo-out .pytest_cache examples/node/node_modules
