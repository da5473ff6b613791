# posray: the two commands of the README, and their parts.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
# Every dependency of posray and its test extra, pinned with hashes: what `make install` and CI install.
LOCK := requirements.lock

.PHONY: install lock lock-upgrade demo up down status test test-fast bench clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q --require-hashes -r $(LOCK)
	$(PIP) install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## Re-resolve requirements.lock after a change to pyproject.toml's dependencies (pins already in the
## lock are kept when they still fit); `make lock-upgrade` moves every pin to the newest allowed.
lock:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q 'uv>=0.13,<1'
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --universal --python-version 3.11 --generate-hashes \
		--custom-compile-command 'make lock' --quiet $(LOCK_FLAGS) -o $(LOCK)

lock-upgrade:
	$(MAKE) lock LOCK_FLAGS=--upgrade

## Install, start posray (embedded Redis + PostgreSQL + local Ray), run the demo.
demo: $(STAMP)
	$(VENV)/bin/posray up
	$(VENV)/bin/posray demo
	$(VENV)/bin/posray status

up: $(STAMP)
	$(VENV)/bin/posray up

down: $(STAMP)
	$(VENV)/bin/posray down

status: $(STAMP)
	$(VENV)/bin/posray status

## The performance targets of docs/performance.md in one run (~15 min): posray up, bench-suite, down.
bench: $(STAMP)
	$(VENV)/bin/posray up
	$(VENV)/bin/posray bench-suite --out bench-results; status=$$?; $(VENV)/bin/posray down; exit $$status

## Install and run the whole test suite (needs PostgreSQL on 127.0.0.1:5432, Redis on 6379).
test: $(STAMP)
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q tests/unit

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info
