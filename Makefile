# The two everyday commands: `make run` and `make test`.
.PHONY: run up down status test lint typecheck bench

VENV := .venv/.installed

# Installs when .venv is missing or older than what it is made from; says so, as it takes a while.
$(VENV): pyproject.toml scripts/install package-lock.json
	@echo "installing the service and its tools with scripts/install (the first time takes a minute or two)" >&2
	scripts/install

run: $(VENV)  ## start every tenant locally and print their URLs; Ctrl-C stops
	scripts/dev run

up: $(VENV)  ## the same, in the background
	scripts/dev up

down:  ## stop what `make up` started
	scripts/dev down

# scripts/dev status exits 3 when no tenant runs (as `systemctl status`); for make that is no error.
status:  ## print the URLs of the tenants that run, and what is wrong with the others
	@scripts/dev status || [ $$? -eq 3 ]

test: $(VENV)  ## the whole suite against a private PostgreSQL it starts itself
	.venv/bin/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)  ## seed one tenant with 1,000,000 rows and measure it with wrk (docs/performance.md)
	scripts/bench $(BENCH_ARGS)

lint: $(VENV)
	.venv/bin/ruff check service scripts tests

typecheck: $(VENV)
	.venv/bin/mypy
