# Two commands do all the set-up: `make run` and `make test`. Both make .venv when it is missing
# (or when pyproject.toml changed since it was made).

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.gswarm-installed
BENCH_STAMP := $(VENV)/.gswarm-bench-installed

PORT ?= 8888
IP ?= 127.0.0.1
NODES ?= 2
# Where http(s) sources may be fetched besides public addresses, e.g. FETCH_ALLOW="127.0.0.0/8 ::1/128"
FETCH_ALLOW ?=
ifeq ($(strip $(TOKEN)),)
TOKEN := $(shell $(PYTHON) -c 'import secrets; print(secrets.token_hex(24))')
endif

# Where clients reach the server: loopback when it listens on every interface.
HOST := $(if $(filter 0.0.0.0 :: [::] *,$(IP)),127.0.0.1,$(IP))

# Scratch of tests and Dask stays in the work tree, never in /tmp at large.
TMP := $(CURDIR)/.tmp

.PHONY: env run test browser bench proto docs clean reset

env: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all]'
	@touch $(STAMP)

# One Ctrl-C stops it, workers included (answer_yes: Jupyter would first ask to confirm).
run: env
	@echo "gswarm: starting Jupyter with $(NODES) nodes; open http://$(HOST):$(PORT)/lab?token=$(TOKEN)"
	@echo "gswarm: for curl and the SDK in another shell, paste:"
	@echo "export GSWARM_URL=http://$(HOST):$(PORT)/"
	@echo "export GSWARM_TOKEN=$(TOKEN)"
	$(VENV)/bin/jupyter lab --no-browser --allow-root --ip=$(IP) --port=$(PORT) \
		--ServerApp.port_retries=0 --ServerApp.answer_yes=True \
		--IdentityProvider.token=$(TOKEN) --GswarmApp.local_nodes=$(NODES) \
		$(foreach a,$(FETCH_ALLOW),--GswarmApp.fetch_allow=$(a))

# The browser suite (tests/browser) drives JupyterLab in Debian's chromium, installed here when
# missing (as root, apt-get); without it that suite is skipped and the summary says why.
browser:
	@command -v chromium >/dev/null || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
		{ apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; }; } || \
		echo "gswarm: chromium is not installed (as root: apt-get install -y chromium); the browser tests are skipped"

# The Hugging Face model tests run in a pytest process of their own: after them, the in-process
# Dask workers that the server tests start in the same process stopped running tasks.
HF_TESTS := tests/kernels/test_hf_*.py tests/backends/test_hf_runners.py tests/server/test_hf_*.py \
	tests/magics/test_hf_*.py tests/cluster/test_hf_*.py

test: env browser
	@rm -rf $(TMP)/pytest $(TMP)/pytest-hf $(TMP)/junit*.xml && mkdir -p $(TMP)
	@# Dask may print leftovers at interpreter exit: the last line is always the plain count.
	DASK_TEMPORARY_DIRECTORY=$(TMP)/dask $(PY) -m pytest -q --basetemp=$(TMP)/pytest \
		--junitxml=$(TMP)/junit.xml $(addprefix --ignore=,$(wildcard $(HF_TESTS))) \
		--nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg tests notebooks; \
	status=$$?; \
	DASK_TEMPORARY_DIRECTORY=$(TMP)/dask $(PY) -m pytest -q --basetemp=$(TMP)/pytest-hf \
		--junitxml=$(TMP)/junit-hf.xml $(wildcard $(HF_TESTS)) || status=1; \
	$(PY) .ci/summary.py $(TMP)/junit.xml $(TMP)/junit-hf.xml; exit $$status

# The peers serving is compared with (the `bench` extra: LitServe), never runtime dependencies.
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e '.[bench]'
	@touch $(BENCH_STAMP)

# The soak (benchmarks/bench_soak.py), the LitServe comparison (bench_litserve.py) and the
# embedding benchmark (bench_embeddings.py) load the servers with wrk, installed here when missing
# (Debian package, as root); without it they are skipped. GSWARM_SOAK_SECONDS shortens the soak,
# GSWARM_SERVE_SECONDS the serving loads, GSWARM_EMBED_SECONDS the embedding rounds.
bench: env $(BENCH_STAMP)
	@mkdir -p $(TMP)
	@command -v wrk >/dev/null || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
		{ apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; }; } || \
		echo "gswarm: wrk is not installed (as root: apt-get install -y wrk); the soak and LitServe comparison are skipped"
	@command -v wrk >/dev/null && echo "gswarm: load generator $$(command -v wrk) ($$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2))" || true
	DASK_TEMPORARY_DIRECTORY=$(TMP)/dask $(PY) -m benchmarks

proto: env
	$(PY) -m gswarm_jupyter.profiler.gen

# docs/api.md is generated from the route table; tests/test_docs.py checks it is up to date.
docs: env
	$(PY) -m gswarm_jupyter.server.apidoc > docs/api.md.new && mv docs/api.md.new docs/api.md

clean:
	rm -rf $(TMP) .pytest_cache
	@echo "make clean keeps the server's state (models, data, tasks, services); make reset deletes it"

# Deletes the state `make run` keeps for this checkout (its default GswarmApp.data_dir), unless a
# server is running on it.
reset: env
	$(PY) -m gswarm_jupyter.server.statedir --reset $(CURDIR)
