# Two entry points: `make demo` (install, then the whole grading pipeline on demo submissions)
# and `make test` (install, then the full test suite). DATA is the folder holding MNIST/raw/*.gz.
PYTHON ?= python3
VENV ?= .venv
DATA ?= ../shared/data
BIN := $(VENV)/bin

.PHONY: install demo test check

$(BIN)/aecourse: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/aecourse

demo: install
	$(BIN)/aecourse demo --data-dir $(DATA) --offline-split

test: install
	AUTOENCODERS_DATA_DIR=$(abspath $(DATA)) AUTOENCODERS_OFFLINE_SPLIT=1 $(BIN)/python -m pytest

check: install
	$(BIN)/aecourse check
