# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# PADDLE=gpu installs the CUDA build of Paddle instead of the CPU one, from Paddle's own package index
# (PyPI does not carry the 3.x CUDA builds); pick the index that matches the machine's CUDA version.
PADDLE ?= cpu
PADDLE_GPU_INDEX ?= https://www.paddlepaddle.org.cn/packages/stable/cu126/

.PHONY: run test test-fast openapi install browser compose-check postgres-server prometheus-server sandbox clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-$(PADDLE): $(BIN)/activate setup.cfg pyproject.toml clients/python/pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	@# The Python client and its `studio` command line (clients/python), editable like the studio itself.
	$(BIN)/pip install --quiet -e clients/python
	@# The CUDA build replaces the CPU one (both provide `paddle`); its other dependencies are the same.
	@if [ "$(PADDLE)" = "gpu" ]; then \
		$(BIN)/pip uninstall --yes paddlepaddle && \
		$(BIN)/pip install --quiet --no-deps --index-url "$(PADDLE_GPU_INDEX)" \
			"$$(grep -o 'paddlepaddle-gpu==[0-9.]*' setup.cfg)"; \
	fi
	rm -f $(VENV)/.installed-*
	touch $@

install: $(VENV)/.installed-$(PADDLE)

run: install sandbox
	$(BIN)/python app.py

# Debian's Chromium drives the end-to-end tests, with Noto CJK so that Chinese pages are measured (and their
# screenshots read) with real glyphs; install them when missing.
browser:
	@command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || { \
		if [ "$$(id -u)" = "0" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk; fi; }

# Debian's docker-compose checks the compose files in the tests (no Docker engine is needed for that).
compose-check:
	@command -v docker-compose >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = "0" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; fi; }

# Debian's PostgreSQL server: the database tests run on SQLite and on a PostgreSQL the tests start themselves.
postgres-server:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = "0" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; fi; }

# Debian's Prometheus: a test scrapes the studio's /metrics with a real Prometheus it starts on loopback.
prometheus-server:
	@command -v prometheus >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = "0" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; fi; }

# Debian's bubblewrap runs the checks of uploaded images in a sandbox (without it, under resource limits only).
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = "0" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; fi; } || \
		echo "bubblewrap could not be installed: upload checks will run under resource limits only"

test: install browser compose-check postgres-server prometheus-server sandbox
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The fast tier while developing: every test not marked slow (no model training, worker, browser or
# PostgreSQL). `make test` stays the whole suite, which CI runs.
test-fast: install sandbox
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow"

# The API's document, committed as openapi.json: write it after changing an operation, and review its diff.
openapi: install
	$(BIN)/python -m webapp.api_docs

clean:
	rm -rf $(VENV) build *.egg-info
