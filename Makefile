# The two commands of the README:
#   make demo   installs everything into .venv and runs the end-to-end demo (its defaults: the miniature world, offline)
#   make test   installs everything into .venv and runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUTPUT ?= demo-output
export NO_ALBUMENTATIONS_UPDATE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export NO_MKDOCS_2_WARNING := 1

.PHONY: install browser demo test test-fast lint docs screenshots dist

install: $(VENV)/.installed

# Reinstalled whenever pyproject.toml changes. pip takes torch + torchvision from PyPI together (a few GB, cached).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[dev]"
	touch $@

demo: install
	$(BIN)/magicnaming demo --output $(OUTPUT) --overwrite true

# the app's browser test drives Debian's chromium (browser downloads are not reachable): installed when missing, as
# root (CI); elsewhere the test is skipped with the command that installs it
browser:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		{ apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

test: install browser
	$(BIN)/python -m pytest

# the development loop: every test not marked slow (a few minutes on 2 cores); `make test` runs them all
test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# the documentation site (docs/, mkdocs.yml) into site/; --strict: a broken link or reference fails
docs: install
	$(BIN)/mkdocs build --strict --site-dir site

# the docs' screenshots, taken by the app's browser tests from the miniature world (the app's defaults: run
# `make demo` first, for the cached world and demo-output/encoder)
screenshots: install browser
	MAGICNAMING_SCREENSHOTS=docs/images $(BIN)/python -m pytest tests/test_app_browser.py

# The sdist and the wheel a release uploads, checked; tests/test_packaging.py builds the same (offline) in `make test`.
dist: install
	rm -rf dist
	$(BIN)/python -m build
	$(BIN)/twine check --strict dist/*
