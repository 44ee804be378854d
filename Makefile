# Two entry points: `make demo` (install, then the whole grading pipeline on demo submissions)
# and `make test` (install, then the full test suite). DATA is the folder holding MNIST/raw/*.gz.
PYTHON ?= python3
VENV ?= .venv
DATA ?= ../shared/data
BIN := $(VENV)/bin

.PHONY: install sandbox demo test check

$(BIN)/aecourse: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/aecourse sandbox

# Autograde kernels run in bubblewrap (grader/sandbox.py); install it when we can (root, apt).
sandbox:
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null); } \
		|| echo "WARNING: bubblewrap missing: install it (apt-get install bubblewrap) to sandbox grading kernels"

demo: install
	$(BIN)/aecourse demo --data-dir $(DATA) --offline-split

# The reference checkpoints first (cached; torch on both cores), then the suite on two workers, one test
# file each at a time: test_pipeline.py grades every submission once on one (two students at a time).
test: install
	$(BIN)/aecourse train-reference --data-dir $(DATA) --offline-split
	AUTOENCODERS_DATA_DIR=$(abspath $(DATA)) AUTOENCODERS_OFFLINE_SPLIT=1 AECOURSE_TEST_NOTEBOOKS= \
		$(BIN)/python -m pytest -n 2 --dist loadfile

check: install
	$(BIN)/aecourse check
