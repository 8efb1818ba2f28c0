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

# Without a payment provider's key (PAYMENT_API_KEY), localstripe plays the provider on loopback while the app runs.
run: $(STAMP) $(MO)
	$(FLASK) db upgrade
	$(FLASK) network load
	@if [ -n "$$PAYMENT_API_KEY" ]; then \
		$(FLASK) demo load && exec $(FLASK) run --host 127.0.0.1 --port 5000; \
	fi; \
	export PAYMENT_API_BASE=http://127.0.0.1:$(PROVIDER_PORT); \
	$(BIN)/python devtools/localstripe_server.py --port $(PROVIDER_PORT) \
		--store instance/localstripe.pickle & provider=$$!; \
	trap 'kill $$provider 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python -c "import socket, time; \
	[time.sleep(0.1) for _ in range(100) if socket.socket().connect_ex(('127.0.0.1', $(PROVIDER_PORT)))]"; \
	echo "payment provider (localstripe): http://127.0.0.1:$(PROVIDER_PORT)"; \
	$(FLASK) settlement provider-webhook && $(FLASK) demo load && $(FLASK) run --host 127.0.0.1 --port 5000

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
