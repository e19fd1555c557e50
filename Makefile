# Two entry points do everything on a fresh machine: `make demo` and `make test`.
# the first Python >= 3.10 found (a Mac's own python3 may be the Command Line Tools' 3.9)
PY ?= $(shell for p in python3 python3.13 python3.12 python3.11 python3.10; do \
  $$p -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLE := mlx_hdr/assets/sample.jpg

.PHONY: install system-deps demo test lint bench

# Debian's OpenBLAS makes MLX's CPU build ~6x faster (mlx_hdr preloads it when present).
system-deps:
	@if [ "$$(uname -s)" = "Linux" ] && command -v apt-get >/dev/null 2>&1 \
	   && [ ! -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0 ] \
	   && [ ! -e /usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0 ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	  ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libopenblas0-pthread) \
	    || echo "note: could not install OpenBLAS; MLX falls back to its slow bundled BLAS"; \
	fi

$(BIN)/python:
	@[ -n "$(PY)" ] || { echo "error: mlx-hdr needs Python >= 3.10 (on a Mac: brew install python@3.12)"; exit 1; }
	$(PY) -m venv $(VENV)

install: system-deps $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'

demo: install
	$(BIN)/mlx-hdr predict $(SAMPLE) -o out/ --format hdr --format uhdr

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: install
	$(BIN)/python scripts/benchmark.py
