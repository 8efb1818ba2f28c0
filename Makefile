# Two commands for a new machine: `make run` (the platform on SQLite, jobs inline, demo data) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
FLASK := $(BIN)/flask --app wsgi
MO := metropoints/translations/zh/LC_MESSAGES/messages.mo

.PHONY: run test lint bench-accrual worker translations-update clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

$(MO): metropoints/translations/zh/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel compile -d metropoints/translations

PROVIDER_PORT ?= 8420

# Without a payment provider's key (PAYMENT_API_KEY), localstripe plays the provider on loopback (devtools/run.sh).
run: $(STAMP) $(MO)
	FLASK="$(FLASK)" PYTHON="$(BIN)/python" PROVIDER_PORT=$(PROVIDER_PORT) bash devtools/run.sh

test: $(STAMP) $(MO)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

worker: $(STAMP) $(MO)
	$(FLASK) worker

bench-accrual: $(STAMP)
	$(BIN)/python bench/accrual.py $(BENCH_ARGS)

translations-update: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k N_ -o metropoints/translations/messages.pot .
	$(BIN)/pybabel update -i metropoints/translations/messages.pot -d metropoints/translations

clean:
	rm -rf $(VENV) instance *.egg-info
