# The two everyday commands: `make repro` (run the pipeline) and `make test`.
# Both create .venv on first use. Run `make help` for the rest.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)


.PHONY: help venv repro trial report test test-ui test-fast lint bench bench-throughput server \
	server-stop server-status dag clean-venv team-up team-down team-status bench-team bench-suite \
	bench-faults

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.txt constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet --no-compile -r requirements.txt -c constraints.txt
	@# pip byte-compiles one file at a time; compileall spreads it over every core (83 s -> 62 s here)
	$(VENV)/bin/python -m compileall -q -j 0 "$$($(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null
	@touch $@

venv: $(STAMP)  ## create .venv and install requirements (only when they changed)

# The tracking server the stages log to: MLFLOW_TRACKING_URI when set, else the local one.
define tracking_server
	@if [ -n "$$MLFLOW_TRACKING_URI" ]; then echo "tracking at $$MLFLOW_TRACKING_URI (MLFLOW_TRACKING_URI): no local server started"; \
	else python -m tools.tracking_server start; fi
endef

repro: $(STAMP)  ## start the tracking server if needed, then dvc repro
	$(tracking_server)
	dvc repro

PROFILE ?= tiny
trial: $(STAMP)  ## a quick end-to-end trial as a DVC experiment: make trial [PROFILE=tiny] (params/)
	$(tracking_server)
	dvc exp run $$(python -m tools.profile flags $(PROFILE))

BASE ?=
REPORT ?= report
report: $(STAMP)  ## Markdown report of this tree against BASE (default: merge base with main): make report [BASE=<rev>]
	python -m tools.report $(if $(BASE),--base "$(BASE)") --out "$(REPORT)"

# pytest-xdist workers, one test module each at a time, in the order tests/conftest.py sets.
# Much of a test's time is spent waiting on servers, subprocesses and TensorFlow's
# single-threaded start, so three workers keep 2 cores busier than two (7.9 against 8.5
# min here). PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 3
PYTEST := python -m pytest -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder --durations=10

CHROMIUM := /usr/bin/chromium

$(CHROMIUM):  # the browser test drives Debian's chromium (Playwright's own downloads cannot work offline)
	@echo "installing Debian's chromium for the MLflow UI test"
	@command -v apt-get >/dev/null || { echo "error: no apt-get; install chromium at $(CHROMIUM) yourself" >&2; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
	  || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }

C_COMPILER := /usr/bin/cc

$(C_COMPILER):  # multi_worker training on a loopback cluster builds a small bind library with it (fakenews/loopback.py)
	@echo "installing Debian's gcc for the loopback bind library of multi_worker training"
	@command -v apt-get >/dev/null || { echo "error: no apt-get; install a C compiler at $(C_COMPILER) yourself" >&2; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc libc6-dev >/dev/null \
	  || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc libc6-dev >/dev/null; }

test: $(STAMP) $(CHROMIUM) $(C_COMPILER)  ## run the test suite, the browser test included (what CI runs: .ci/run)
	$(PYTEST)

test-ui: $(STAMP) $(CHROMIUM)  ## the MLflow UI in headless Chromium: runs table, compare LSTM vs BERT
	$(PYTEST) -m ui

test-fast: $(STAMP)  ## run the unit tests only: no server, no project copy, no training (~1 min)
	$(PYTEST) -m "not slow"

lint: $(STAMP)  ## ruff: lint and formatting check (settings in pyproject.toml); CI runs it too
	ruff check .
	ruff format --check .

bench: $(STAMP)  ## benchmark a full, no-op and incremental repro, inference, quality, throughput vs bound: metrics/bench.json (~60 min)
	python -m bench $(BENCH_ARGS)

bench-throughput: $(STAMP)  ## scoring/training throughput of this repro's models vs the matmul bound: metrics/bench_throughput.json (~15 min)
	python -m bench.throughput $(BENCH_ARGS)

server: $(STAMP)  ## start the local MLflow tracking server (no-op when one answers)
	python -m tools.tracking_server start

server-stop: $(STAMP)  ## stop the local MLflow tracking server
	python -m tools.tracking_server stop

server-status: $(STAMP)  ## is the tracking server up?
	python -m tools.tracking_server status

team-up: $(STAMP)  ## start the team service: PostgreSQL, S3, MLflow with logins (team/)
	python -m tools.team up $(TEAM_ARGS)

team-down: $(STAMP)  ## stop the team service; its data stay in team/
	python -m tools.team down

team-status: $(STAMP)  ## what the team service runs, on which ports, and its logs
	python -m tools.team status

bench-team: $(STAMP)  ## attacks refused, S3 with doors closed vs open, load and fault: SQLite vs team (~9 min)
	python -m bench.team $(BENCH_ARGS)

bench-faults: $(STAMP)  ## fault report: bad inputs refused, SIGKILLed writers intact, promotion races (~6 min)
	python -m bench.faults $(BENCH_ARGS)

bench-suite: $(STAMP) $(CHROMIUM)  ## where make test's time goes, by kind of process: metrics/bench_suite.json (~8 min)
	python -m bench.suite $(BENCH_ARGS)

.PHONY: score
score: $(STAMP)  ## score a table with the registry champion: make score IN=in.csv OUT=out.csv [ENGINE=spark] [ARGS=...]
	@test -n "$(IN)" -a -n "$(OUT)" || { echo "usage: make score IN=headlines.csv OUT=scored.csv [ENGINE=in-process|spark] [ARGS='--title-column headline']" >&2; exit 2; }
	python -m tools.score --input "$(IN)" --output "$(OUT)" $(if $(ENGINE),--engine $(ENGINE)) $(ARGS)

dag: $(STAMP)  ## print the pipeline DAG
	dvc dag

clean-venv:  ## remove .venv
	rm -rf $(VENV)
