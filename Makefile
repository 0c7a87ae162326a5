# `make run` and `make test` set everything up themselves: the virtual environment, the package
# and its tools. Nothing depends on what happens to be installed on the machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NEO    := $(BIN)/neo

.PHONY: install run test lint bench bench-quick bench-completeness clean servers

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# The main job on the built-in simulated provider: fill stock_basic, download bars, factors and
# the three statements for every listed symbol of the simulated market, watch the backlog drain,
# stop, prove nothing is missing (`neo verify`), and show what landed.
run: $(STAMP)
	-@$(NEO) stop >/dev/null 2>&1
	$(NEO) start
	$(NEO) enqueue --task-type stock_basic
	$(NEO) status --watch --until-idle
	$(NEO) enqueue --task-type daily_qfq
	$(NEO) enqueue --task-type income
	$(NEO) enqueue --task-type balancesheet
	$(NEO) enqueue --task-type cashflow
	$(NEO) status --watch --until-idle
	$(NEO) stop
	$(NEO) verify
	$(NEO) query "SELECT 'stock_basic' AS table_name, count(*) AS rows FROM stock_basic \
	  UNION ALL SELECT 'daily', count(*) FROM daily UNION ALL SELECT 'adj_factor', count(*) FROM adj_factor \
	  UNION ALL SELECT 'income', count(*) FROM income UNION ALL SELECT 'balancesheet', count(*) FROM balancesheet \
	  UNION ALL SELECT 'cashflow', count(*) FROM cashflow UNION ALL SELECT 'daily_qfq (view)', count(*) FROM daily_qfq"
	$(NEO) query "SELECT ts_code, trade_date, round(open, 3) AS open, round(close, 3) AS close, \
	  round(adj_factor, 3) AS factor FROM daily_qfq WHERE ts_code = (SELECT min(ts_code) FROM daily) \
	  ORDER BY trade_date DESC" --limit 5

lint: $(STAMP)
	$(BIN)/ruff check neo_cli tests

# Servers the tests start on 127.0.0.1 on free ports of their own: Debian's redis-server and
# prometheus (which brings promtool), installed with apt when missing. Without them (and without
# root) the tests that need them skip locally; with CI set they fail instead, so CI can never
# pass without them.
SERVERS := redis-server:redis-server prometheus:prometheus promtool:prometheus
servers:
	@missing=""; for pair in $(SERVERS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (apt)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } \
	  || { if [ -n "$$CI" ]; then echo "could not install$$missing" >&2; exit 1; fi; \
	       echo "not installed:$$missing; the tests that need them will skip"; }; fi

# Two workers for everything but the tests that measure calls against a limit: those run
# alone afterwards, so another test's CPU never shows up as a slow call in their figures.
test: $(STAMP) servers
	$(BIN)/ruff check neo_cli tests
	$(BIN)/pytest -q -n 2 -m "not limits"
	$(BIN)/pytest -q -m limits

BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

# Everything but bench-completeness, unattended (about 30 minutes): writes BENCHMARKS.md section
# by section (bench/run.py) and bench/plots/*.png.
# Bytecode first, as an installed neo has it: on a machine that sets PYTHONDONTWRITEBYTECODE, an
# editable install would otherwise compile its modules again in every `neo status` timed.
bench: $(BENCH_STAMP) servers
	$(BIN)/python -m compileall -q neo_cli
	$(BIN)/python bench/run.py --output BENCHMARKS.md

# The seed's three designs (short stretches) and the save path, in under 3 minutes; prints
# the figures and leaves BENCHMARKS.md alone.
bench-quick: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --quick

# The planner against a 5,000-symbol market and the ledger after a year of daily runs: about
# 40 minutes by itself, so not part of `make bench` (which carries its last figures over).
bench-completeness: $(BENCH_STAMP)
	$(BIN)/python bench/completeness.py --write BENCHMARKS.md

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
