# Two commands on a fresh clone: `make book` and `make test`. Both create .venv from
# requirements.txt the first time (and again whenever requirements.txt changes).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: book test unit notebooks benchmark clean

$(BIN)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

book: $(BIN)/.installed
	rm -rf _build
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"

test: $(BIN)/.installed
	$(BIN)/python -m pytest

unit: $(BIN)/.installed
	$(BIN)/python -m pytest tests

notebooks: $(BIN)/.installed
	$(BIN)/python -m pytest notebooks

benchmark: $(BIN)/.installed
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf _build .pytest_cache
