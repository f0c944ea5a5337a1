# Space Ops: `make run` starts the bot, `make test` runs the test suite, `make test-fast` all but the slow tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run console demo test test-fast bench venv clean

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Space Ops needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	@$(BIN)/python -m bot run

console: $(STAMP)
	@$(BIN)/python -m bot console

# The Hub emulator with demo Spaces, a throwaway Redis and the console: Space Ops without Slack or a Hub account.
demo: $(STAMP)
	@command -v redis-server >/dev/null || { echo "make demo needs redis-server. Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis"; exit 1; }
	@$(BIN)/python -m tests.emulators.demo

# PYTHONDONTWRITEBYTECODE= : every xdist worker rewrites the asserts of ~180 test modules and compiles the bot
# (about 6 s of CPU each) unless the bytecode is cached in __pycache__/ (ignored by git): cached even when the
# shell sets PYTHONDONTWRITEBYTECODE.
test: $(STAMP)
	@command -v redis-server >/dev/null || { echo "redis-server is not installed: the tests start a real one. Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis"; exit 1; }
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

# Everything but @pytest.mark.slow (real processes, real time, fuzz runs): a minute, for the edit-test loop.
test-fast: $(STAMP)
	@command -v redis-server >/dev/null || { echo "redis-server is not installed: the tests start a real one. Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis"; exit 1; }
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/ack.py
	$(BIN)/python bench/poll.py
	$(BIN)/python bench/fleet.py
	$(BIN)/python bench/alert_delay.py

clean:
	rm -rf $(VENV) var *.egg-info
