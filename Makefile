# Both entry points create their own virtual environments from pyproject.toml.
#   .venv        TensorFlow backend + every optional dependency: the whole suite
#   .venv-jax    JAX backend:   the tests marked `backend` (stateful Keras proofs, datasets, callbacks), and
#                statebatch.jax (flax, grain: the tests marked `jax_native`)
#   .venv-torch  torch backend: the same tests
#   .venv-peers  `make bench-peers` only: the forecasting peers (bench/peers/requirements.txt) beside
#                statebatch, for bench/run.py's forecast_windows workload; not part of `make test` or CI
PY ?= python3
TORCH := torch==2.13.0
PIP := -m pip install --quiet --disable-pip-version-check
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
JAX_STAMP := .venv-jax/.installed
TORCH_STAMP := .venv-torch/.installed
PEERS_STAMP := .venv-peers/.installed
PEERS_ARGS ?=

.PHONY: demo test lint test-main test-jax test-torch docs bench bench-quick bench-peers clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python $(PIP) -e '.[dev]' '$(TORCH)'
	touch $(STAMP)

$(JAX_STAMP): pyproject.toml
	$(PY) -m venv .venv-jax
	.venv-jax/bin/python $(PIP) -e '.[jax,test]'
	touch $(JAX_STAMP)

$(TORCH_STAMP): pyproject.toml
	$(PY) -m venv .venv-torch
	.venv-torch/bin/python $(PIP) '$(TORCH)'
	.venv-torch/bin/python $(PIP) -e '.[torch,test]'
	touch $(TORCH_STAMP)

# torch first (the CPU build from the local wheel folder), so that no peer pulls a CUDA build
$(PEERS_STAMP): pyproject.toml bench/peers/requirements.txt bench/peers/constraints.txt
	$(PY) -m venv .venv-peers
	.venv-peers/bin/python $(PIP) '$(TORCH)'
	.venv-peers/bin/python $(PIP) -r bench/peers/requirements.txt -c bench/peers/constraints.txt -e .
	touch $(PEERS_STAMP)

demo: $(STAMP)
	$(BIN)/python -m statebatch.demo

# the environments are made one after the other, then the three backends' suites run side by side (each
# mostly keeps one core busy): on a 2-core machine 14 min from a fresh clone, against 20.5 one after the other;
# --output-sync prints each suite's report whole when it ends, and make fails if any suite fails
test: lint $(JAX_STAMP) $(TORCH_STAMP)
	$(MAKE) -j3 --output-sync=target test-main test-jax test-torch

lint: $(STAMP)
	# pyflakes/pycodestyle errors/bugbear and the type checker (config: pyproject.toml)
	$(BIN)/ruff check statebatch tests bench examples
	$(BIN)/mypy

test-main: $(STAMP)
	$(BIN)/python -m pytest -q -m 'not jax_native' --ignore=tests/test_jax_native.py   # statebatch.jax: in .venv-jax

test-jax: $(JAX_STAMP)
	# the statebatch.torch tests import torch (not in this venv) and are not marked `backend`
	KERAS_BACKEND=jax .venv-jax/bin/python -m pytest -q -m '(backend and not exhaustive) or jax_native' --ignore-glob='tests/test_torch*' --ignore=tests/test_census_torch.py

test-torch: $(TORCH_STAMP)
	KERAS_BACKEND=torch .venv-torch/bin/python -m pytest -q -m 'backend and not exhaustive' --ignore=tests/test_jax_native.py

docs: $(STAMP)
	# warnings are errors (mkdocs.yml: strict); the notebooks are rendered as they are stored
	NO_MKDOCS_2_WARNING=1 TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m mkdocs build --strict --quiet

bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

# statebatch's forecasting windows vs pytorch-forecasting, gluonts, darts, neuralforecast (own venv);
# e.g. `make bench-peers PEERS_ARGS=--quick`
bench-peers: $(PEERS_STAMP)
	.venv-peers/bin/python bench/run.py --only forecast_windows --out bench/results/peers.json $(PEERS_ARGS)

clean:
	rm -rf $(VENV) .venv-jax .venv-torch .venv-peers .pytest_cache .hypothesis bench/results site
