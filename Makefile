# Everything a fresh polyglot machine needs is installed from here (apt, pip, Maven, Zig).
PY ?= python3
APT_PACKAGES = hyperfine bubblewrap chromium linux-perf valgrind
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system python viewer browser targets demo test lint

setup: system python viewer browser targets

system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

python:
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,ray]'

viewer:
	$(MAKE) -s -C tools/profile setup

browser:  # playwright-core drives Debian's chromium for the report test; no browser download
	cd tests/browser && npm ci --no-audit --no-fund --silent

targets:
	@for t in targets/*/; do if [ -f $$t/Makefile ]; then $(MAKE) -s -C $$t setup || exit 1; fi; done

# The main job: a scripted showcase transcript replayed offline, every measurement live.
demo: setup
	$(PY) -m agent.cli --repo loganalyzer --llm replay:targets/loganalyzer/showcase.jsonl

test: setup
	NIGHTSHIFT_REQUIRE_TOOLS=1 $(PY) -m pytest -q

lint:
	$(PY) -m ruff check .
