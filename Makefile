# Two commands do everything on a fresh machine: `make demo` and `make test`.
# The set-up installs the CPU build of torch 2.13.0 before the package: a bare `torch`
# requirement would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bastion-installed

BENCH := .venv-bench/bin

.PHONY: setup demo test lint docs browser bench-generate bench-align bench-ppo bench-guard bench-guard-sources bench-redteam

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench,serve,postgres,docs]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/bastion loop

lint: setup
	$(BIN)/ruff check src tests benchmarks docs/hooks
	$(BIN)/ruff format --check src tests benchmarks docs/hooks
	$(BIN)/mypy

# The review pages are tested in Debian's Chromium, driven by Playwright.
browser:
	command -v chromium >/dev/null 2>&1 || { apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# The documentation site, built strictly: a broken link, page or reference fails the build.
docs: setup
	$(BIN)/mkdocs build --strict --site-dir site

test: docs lint browser
	$(BIN)/pytest

bench-generate: setup
	$(BIN)/python benchmarks/generate.py

# TRL is installed only for this benchmark, in its own environment.
bench-align:
	test -x $(BENCH)/python || $(PYTHON) -m venv .venv-bench
	$(BENCH)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BENCH)/python -m pip install --quiet --disable-pip-version-check -e '.[bench]' \
		trl==1.16.0 datasets
	$(BENCH)/python benchmarks/align_vs_trl.py --loss dpo
	$(BENCH)/python benchmarks/align_vs_trl.py --loss dpo --models smollm2 --append \
		--variants bastion-gc trl-precompute-gc
	$(BENCH)/python benchmarks/align_vs_trl.py --loss kto

# TRL's PPO exists only up to TRL 1.12.0 (trl.experimental.ppo), so it gets its own environment.
bench-ppo: setup
	test -x .venv-trlppo/bin/python || $(PYTHON) -m venv .venv-trlppo
	.venv-trlppo/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	.venv-trlppo/bin/python -m pip install --quiet --disable-pip-version-check trl==1.12.0 \
		peft datasets accelerate transformers
	$(BIN)/python benchmarks/ppo_step.py

# Presidio is installed only for these benchmarks, in the same benchmark environment; LLM Guard
# (which pins its own transformers and Presidio) in one of its own.
bench-guard:
	test -x $(BENCH)/python || $(PYTHON) -m venv .venv-bench
	$(BENCH)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BENCH)/python -m pip install --quiet --disable-pip-version-check -e '.[bench]' \
		presidio-analyzer
	test -x .venv-llmguard/bin/python || $(PYTHON) -m venv .venv-llmguard
	.venv-llmguard/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	.venv-llmguard/bin/python -m pip install --quiet --disable-pip-version-check llm-guard==0.3.16
	$(BENCH)/python benchmarks/pii_f1.py
	$(BENCH)/python benchmarks/guard_latency.py

# The guard's classifiers out of source (about 75 minutes on 2 cores; --tasks picks some).
bench-guard-sources: setup
	$(BIN)/python benchmarks/guard_by_source.py

# garak is installed only for this benchmark, in an environment of its own.
bench-redteam: setup
	test -x .venv-garak/bin/python || $(PYTHON) -m venv .venv-garak
	.venv-garak/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	.venv-garak/bin/python -m pip install --quiet --disable-pip-version-check garak==0.17.1
	$(BIN)/python benchmarks/redteam_vs_garak.py
