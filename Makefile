# Carevault: the two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test lint typecheck pytest bench fuzz fuzz-smoke assurance postgres softhsm nginx topology clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# PostgreSQL comes from the distro; the tests run it as an unprivileged user in a temporary directory.
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
		echo "installing PostgreSQL from the distro packages"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	fi

# SoftHSM2 from the distro: the tests' PKCS#11 token, in a temporary directory of their own.
softhsm:
	@if ! command -v softhsm2-util >/dev/null 2>&1; then \
		echo "installing SoftHSM2 from the distro packages"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq softhsm2 >/dev/null; \
	fi

# nginx from the distro: the topology's TLS load balancer, run in a directory of its own.
nginx:
	@if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then \
		echo "installing nginx from the distro packages"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nginx >/dev/null; \
	fi

# The production topology on this machine (deploy/topology.py); `... down` stops it.
topology: venv postgres nginx
	$(PY) -m deploy.topology up

demo: venv
	$(PY) -m clients.demo

lint: venv
	$(VENV)/bin/ruff check vault keyservice clients tests bench deploy
	$(VENV)/bin/ruff format --check vault keyservice clients tests bench deploy

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv postgres softhsm nginx
	$(VENV)/bin/pytest -q -p no:cacheprovider

# Every atheris target (tests/fuzz/run.py): a short smoke in `make test`, longer in `make fuzz`.
FUZZ_SMOKE_RUNS ?= 20000
FUZZ_SECONDS ?= 300

fuzz-smoke: venv
	$(PY) -m tests.fuzz.run --runs $(FUZZ_SMOKE_RUNS)

test: lint typecheck pytest fuzz-smoke

# The independent model of docs/POLICY.md in its long mode (decision 0028): 100,000 random
# worlds against the policy and 1,000 built through the real key service (~20 min).
assurance: venv
	CAREVAULT_ASSURANCE=long $(VENV)/bin/pytest -q -p no:cacheprovider tests/model

bench: venv
	$(PY) -m bench --all --quick

fuzz: venv
	$(PY) -m tests.fuzz.run --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
