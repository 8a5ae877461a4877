# Two commands on a fresh clone: `make book` and `make test`. Both create .venv from
# requirements.txt the first time (and again whenever requirements.txt changes).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: book browser lint test unit notebooks exercises lab benchmark clean

$(BIN)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# A clean build (never a cache), warnings as errors, missing references reported.
book: $(BIN)/.installed
	rm -rf _build
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"

# Every page of the built book in headless Chromium (skips if Chromium is missing,
# unless BROWSER_CHECK_REQUIRED=1); screenshots land in .ci/screenshots/.
browser: $(BIN)/.installed
	$(BIN)/python tests/browser_check.py _build/html

# Everything CI runs: unit tests and strict nbval, then the clean book build, then the browser.
# Two pytest workers (pytest-xdist), each test module and each chapter whole on one worker
# (--dist loadscope: a notebook's cells share one kernel); OpenMP threads sleep while they wait
# (OMP_WAIT_POLICY=PASSIVE), so two workers on two cores do not slow each other down by spinning.
# It changes no result: every test and every chapter's outputs are the same in either order.
TEST_WORKERS ?= 2
test: $(BIN)/.installed
	$(BIN)/ruff check .
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope
	$(MAKE) --no-print-directory book
	$(MAKE) --no-print-directory browser

lint: $(BIN)/.installed
	$(BIN)/ruff check .

unit: $(BIN)/.installed
	$(BIN)/python -m pytest tests

notebooks: $(BIN)/.installed
	$(BIN)/python -m pytest notebooks

# Regenerate the learner copies after a chapter changes (tests check they are up to date).
exercises: $(BIN)/.installed
	$(BIN)/python -m yolo_lessons.exercises make notebooks/[0-9][0-9]_*.ipynb --out notebooks/exercises --force

# JupyterLab in this folder (notebooks/ and your my-exercises/), from the pinned environment;
# extra options go in LAB_ARGS, e.g. `make lab LAB_ARGS=--no-browser`.
lab: $(BIN)/.installed
	$(BIN)/jupyter lab $(LAB_ARGS)

benchmark: $(BIN)/.installed
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf _build .pytest_cache .ci/screenshots
