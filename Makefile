# Call a Star jobs: the commands a newcomer needs.
#   make demo   install, migrate the embedded SQLite, load demo data, run every job, show status
#   make test   the whole suite on PostgreSQL and on SQLite
#   make bench  the benchmarks in bench/ against PostgreSQL

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/callastar
SQLITE_URL ?= sqlite:///$(CURDIR)/var/callastar.sqlite3
BENCH_PG_URL ?= postgres://postgres@127.0.0.1:5432/callastar_bench
PYTEST_ARGS ?=

.PHONY: install demo test test-postgres test-sqlite lint bench run clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $@

demo: install
	@mkdir -p var/demo-mail
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@# django-environ reads filemail:///var/demo-mail as the path var/demo-mail, here.
	EMAIL_URL=filemail:///var/demo-mail $(PY) manage.py run_all_jobs --dry-run-if-unconfigured
	@echo "Full reminder emails: var/demo-mail/ (one file per SMTP session)"
	@echo
	-$(PY) manage.py cron_status
	@echo
	@echo "Admin: make run (or DEBUG=true $(PY) manage.py runserver), then open http://127.0.0.1:8000/admin/"
	@echo "       and sign in as staff@callastar.test / demo-staff-password"

test: install lint test-postgres test-sqlite

test-postgres: install
	DATABASE_URL=$(PG_URL) $(PY) -m pytest $(PYTEST_ARGS)

test-sqlite: install
	@mkdir -p var
	DATABASE_URL=$(SQLITE_URL) $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run

bench: install
	DATABASE_URL=$(BENCH_PG_URL) $(PY) bench/run.py

# DEBUG on: the production defaults (DEBUG off) redirect plain HTTP to HTTPS.
run: install
	DEBUG=true $(PY) manage.py runserver

clean:
	rm -rf $(VENV) var staticfiles db.sqlite3
