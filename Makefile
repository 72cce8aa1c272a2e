# One task runner for people and CI. `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.deps-stamp

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "maturin>=1.5,<2" "pytest>=7" "pytest-asyncio>=0.23" "hypothesis>=6.90" "ruff>=0.5" "mypy>=1.8"
	$(BIN)/pip install -q "diskcache>=5.6,<6" "sqlalchemy>=2" "psycopg[binary]>=3.1" "pymysql>=1.1" "redis>=5" "hiredis>=2"
	@# mysqlclient (MariaDB's C driver, preferred by DatabaseCache when installed) builds against
	@# the Debian packages libmariadb-dev and pkg-config (.ci/run installs them); without them the
	@# MariaDB tests run on PyMySQL only, and the mysqlclient ones skip (CI makes them fail)
	$(BIN)/pip install -q "mysqlclient>=2.2" || echo "mysqlclient not installed: apt-get install libmariadb-dev pkg-config"
	touch $(STAMP)

.PHONY: deps
deps: $(STAMP) ## create .venv with the build and test tools

.PHONY: build
build: $(STAMP) ## build the Rust extension (release) and install the package into .venv
	$(BIN)/maturin develop --release -q

.PHONY: demo
demo: build ## install, then run the demo (memoize + hot-path figures vs functools.lru_cache)
	$(BIN)/python -m cachehaven

.PHONY: test
test: build ## the whole test suite: Rust unit tests, then pytest (installs what it needs)
	cargo test --quiet
	$(BIN)/python -m pytest tests -q -p no:cacheprovider

.PHONY: lint
lint: $(STAMP) ## cargo fmt --check, clippy -D warnings, ruff
	cargo fmt --check
	cargo clippy --features python --all-targets -- -D warnings
	cargo clippy --all-targets -- -D warnings
	$(BIN)/ruff check python tests benches
	$(BIN)/ruff format --check python tests benches

.PHONY: bench-deps
bench-deps: build
	$(BIN)/pip install -q "cachetools>=5" "cachebox>=4" "moka-py>=0.1" "theine>=0.4"
	@# AgentHeaven 0.9.2, the baseline of benches/backends.py, in its own venv (it pins its own deps)
	test -x .venv-ahvn/bin/python || $(PY) -m venv .venv-ahvn
	.venv-ahvn/bin/pip install -q "agent-heaven==0.9.2" diskcache "sqlalchemy>=2" "psycopg[binary]" pymysql

.PHONY: bench
bench: bench-deps ## hot-path benchmark vs lru_cache and peers; backends vs raw drivers and AgentHeaven
	$(BIN)/python benches/hotpath.py
	$(BIN)/python benches/backends.py

.PHONY: clean
clean: ## remove build outputs and the venv
	rm -rf target $(VENV) .venv-ahvn python/cachehaven/*.so
