# `make quickstart` and `make test` set everything up in .venv on first use.
PYTHON ?= python3
VENV ?= .venv
# TensorFlow flavour: cpu or gpu (tensorflow[and-cuda]).
TF ?= cpu
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(TF)

.PHONY: quickstart test benchmark lint docs clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(TF),test]'
	# TF Serving's request protos, for the serving tests: the wheel names `tensorflow` as a
	# dependency, which would land beside tensorflow-cpu; it needs only protobuf and grpcio.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps tensorflow-serving-api
	touch $@

quickstart: $(STAMP)
	$(BIN)/zoo-train --gin_file=gin_configs/quickstart.gin --model_dir=runs/quickstart

# Three worker processes on two cores: the suite is mostly single-threaded model building
# and child processes that a worker waits for, and a third worker fills those gaps
# (measured from clean clones on 2 idle cores: 750 s with two workers, 617 s with three).
# An idle worker takes queued tests from the others (worksteal), and modules with slow
# tests run first (tests/conftest.py), so no long test starts last.
test: lint
	$(BIN)/python -m pytest -q -n 3 --dist worksteal

benchmark: $(STAMP)
	$(BIN)/python tools/benchmark.py trunk

# ruff (style, complexity, blind excepts, private access), then the import layers
# (pyproject.toml, [tool.importlinter]), then the docs site in strict mode.
lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports
	$(MAKE) --no-print-directory docs

# The docs site from docs/ (mkdocs.yml) into site/: any warning (a broken link or anchor,
# a page missing from the nav, an API name that does not resolve) fails the build.
# (NO_MKDOCS_2_WARNING: mkdocs-material's notice about its successor, printed on every build)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache site
