# `make demo` and `make test` work on a fresh machine: they create .venv, install torch first
# (a pinned CPU build; an unpinned torch would pull a multi-GB CUDA build), then the package.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
export HF_HUB_OFFLINE ?= 1

.PHONY: install test test-slow lint demo clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	$(PY) -m pip install -q -e ".[dev]"
	# tinysoundfont declares pyaudio (playback only, does not build here): install it without deps.
	$(PY) -m pip install -q --no-deps "tinysoundfont>=0.3"
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

lint: install
	$(VENV)/bin/ruff check cam_hf tests examples benchmarks

demo: install
	$(PY) examples/generate.py --random_tiny --seconds 10 --output_dir outputs/demo

clean:
	rm -rf $(VENV) outputs
