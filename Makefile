# Two commands do everything on a fresh machine: `make serve` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
EXTRAS := models,pyannote,openai-whisper,dev
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAY_AUTH_MODE := disabled
export RAY_USAGE_STATS_ENABLED := 0
# Single-node Ray on loopback: without this, Ray resolves 127.0.0.1 to the machine's
# interface address and its servers talk over it.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0

.PHONY: venv test lint pg promtool serve bench-queue clean

venv: $(STAMP)

# torch first: the CPU build (2.13.0) lies on this machine's disk; anything else pulls CUDA.
# resemblyzer, webrtcvad-wheels and openai-whisper go in with --no-deps: resemblyzer's
# metadata asks for webrtcvad (its pkg_resources import breaks) and openai-whisper's for
# 1 GB of triton that CPU machines never use. Their real needs are in pyproject.toml.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps resemblyzer==0.1.4 webrtcvad-wheels==2.0.14 openai-whisper==20250625
	$(PIP) install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

pg:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
	  echo "starting PostgreSQL"; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n1) main start; \
	  for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; }

# promtool (Debian package `prometheus`) checks and unit-tests cluster/prometheus/alerts.yml.
# Skipped when already installed; the service the package ships is never started (the
# policy-rc.d guard refuses it, and it is stopped if it came up anyway).
promtool:
	@command -v promtool >/dev/null || { \
	  echo "installing promtool (Debian package prometheus)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  guard=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; guard=1; fi; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends prometheus; rc=$$?; \
	  if [ -n "$$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	  (service prometheus stop || systemctl stop prometheus) >/dev/null 2>&1 || true; \
	  exit $$rc; }

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: $(STAMP) pg promtool
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest $(PYTEST_ARGS)

# Local Ray head (fake GPUs when none), the app on 127.0.0.1:8000, dashboard on :8265.
serve: $(STAMP)
	$(PY) scripts/serve.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
