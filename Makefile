# The two everyday commands: `make run` and `make test`.
.PHONY: run up down status test lint typecheck bench

VENV := .venv/.installed

$(VENV): pyproject.toml scripts/install package-lock.json
	scripts/install

run: $(VENV)  ## start every tenant locally and print their URLs; Ctrl-C stops
	scripts/dev run

up: $(VENV)  ## the same, in the background
	scripts/dev up

down:  ## stop what `make up` started
	scripts/dev down

status:
	scripts/dev status

test: $(VENV)  ## the whole suite against a private PostgreSQL it starts itself
	.venv/bin/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)  ## seed one tenant with 1,000,000 rows and measure it with wrk (docs/performance.md)
	scripts/bench $(BENCH_ARGS)

lint: $(VENV)
	.venv/bin/ruff check service scripts tests

typecheck: $(VENV)
	.venv/bin/mypy
