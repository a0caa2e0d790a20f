# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# PADDLE=gpu installs the CUDA 12.6 build of Paddle and ONNX Runtime instead of the CPU one, with the CUDA libraries
# as nvidia-* wheels; TENSORRT=1 adds TensorRT to it (about 2 GB). deploy/paddle_build.py is the route (its --help
# names PADDLE_GPU_INDEX and TENSORRT_INDEX, which pick other indexes); setup.cfg's `gpu` extra holds the pins.
# Switching builds reinstalls: both builds' wheels own the same files, so the route removes both before installing.
PADDLE ?= cpu
TENSORRT ?= 0
BUILD := $(PADDLE)$(if $(filter 1,$(TENSORRT)),-tensorrt)

.PHONY: run test test-fast openapi install browser compose-check postgres-server prometheus-server sandbox clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-$(BUILD): $(BIN)/activate setup.cfg pyproject.toml clients/python/pyproject.toml \
		deploy/paddle_build.py
	@# The Python client and its `studio` command line (clients/python), editable like the studio itself.
	$(BIN)/pip install --quiet -e clients/python
	@# The studio, editable, with the wanted build of Paddle and ONNX Runtime; its last step imports them.
	$(BIN)/python deploy/paddle_build.py $(PADDLE) --project '-e .[test]' --quiet \
		$(if $(filter 1,$(TENSORRT)),--tensorrt)
	rm -f $(VENV)/.installed-*
	touch $@

install: $(VENV)/.installed-$(BUILD)

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
