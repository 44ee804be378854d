# Two entry points: `make demo` (install, then the whole grading pipeline on demo submissions)
# and `make test` (install, then the full test suite). DATA is the folder holding MNIST/raw/*.gz.
PYTHON ?= python3
VENV ?= .venv
DATA ?= ../shared/data
BIN := $(VENV)/bin

.PHONY: install sandbox test-services demo test check

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

# What the tests start themselves: a private PostgreSQL server (the shared-gradebook tests) and headless
# Chromium (the formgrader test). Debian packages, installed when we can (root, apt).
test-services:
	@{ ls /usr/lib/postgresql/*/bin/initdb && command -v chromium && command -v chromedriver; } >/dev/null 2>&1 \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			postgresql chromium chromium-driver >/dev/null; } \
		|| echo "WARNING: install postgresql, chromium and chromium-driver (Debian packages) for the tests"

demo: install
	$(BIN)/aecourse demo --data-dir $(DATA) --offline-split

# The reference checkpoints and the retrained variants first (cached; two notebooks at a time), then the suite on two workers, one test
# file each at a time: test_pipeline.py grades every submission once on one (a two-worker Dask cluster).
test: install test-services
	$(BIN)/aecourse train-reference --data-dir $(DATA) --offline-split --variants
	AUTOENCODERS_DATA_DIR=$(abspath $(DATA)) AUTOENCODERS_OFFLINE_SPLIT=1 AECOURSE_TEST_NOTEBOOKS= \
		$(BIN)/python -m pytest -n 2 --dist loadfile --durations=25

check: install
	$(BIN)/aecourse check
