# Call a Star jobs: the commands a newcomer needs.
#   make demo   install, migrate the embedded SQLite, load demo data, run every job, show status
#   make test   the whole suite on PostgreSQL and on SQLite
#   make bench  the benchmarks in bench/ against PostgreSQL
# `test` and `bench` first provision what they need beyond Python packages (`make provision`):
# a PostgreSQL server (the machine's Debian cluster, started if it is down) and, for the
# browser test, Debian's Chromium (installed with apt-get if it is missing).

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/callastar
SQLITE_URL ?= sqlite:///$(CURDIR)/var/callastar.sqlite3
BENCH_PG_URL ?= postgres://postgres@127.0.0.1:5432/callastar_bench
PYTEST_ARGS ?=
# tests/test_browser.py drives this binary through Playwright.
CHROMIUM := /usr/bin/chromium
PG_START_SECONDS ?= 30

.PHONY: install provision provision-postgres provision-chromium demo test test-postgres \
	test-sqlite lint bench run clean

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

provision: provision-postgres provision-chromium

# $(call ensure_postgres,URL): nothing if a server answers at URL; otherwise start the
# machine's Debian cluster (pg_ctlcluster) and wait for it, or fail saying why.
define ensure_postgres
if pg_isready -q -d "$(1)"; then exit 0; fi; \
if ! command -v pg_ctlcluster >/dev/null || [ -z "$$(ls /etc/postgresql 2>/dev/null)" ]; then \
  echo "provision: no PostgreSQL answers at $(1) and there is no local Debian cluster to start;" \
    "start one, or point the URL elsewhere (PG_URL=..., BENCH_PG_URL=...)" >&2; exit 1; fi; \
version=$$(ls /etc/postgresql | sort -V | tail -n 1); \
echo "provision: no PostgreSQL answers at $(1); starting the local cluster:" \
  "pg_ctlcluster --skip-systemctl-redirect $$version main start"; \
pg_ctlcluster --skip-systemctl-redirect $$version main start || { \
  echo "provision: could not start PostgreSQL $$version main (see above);" \
    "if it is already running, check that $(1) names it" >&2; \
  exit 1; }; \
for _ in $$(seq 1 $(PG_START_SECONDS)); do \
  if pg_isready -q -d "$(1)"; then echo "provision: PostgreSQL is up"; exit 0; fi; sleep 1; done; \
echo "provision: PostgreSQL $$version started but still does not answer at $(1)" \
  "after $(PG_START_SECONDS) s" >&2; exit 1
endef

provision-postgres:
	@$(call ensure_postgres,$(PG_URL))

provision-chromium:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	echo "provision: $(CHROMIUM) is missing (tests/test_browser.py drives it);" \
	  "installing Debian's package: apt-get install chromium"; \
	if ! command -v apt-get >/dev/null; then \
	  echo "provision: no apt-get here; install Chromium as $(CHROMIUM) by hand" >&2; exit 1; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "provision: installing chromium needs root: sudo apt-get install -y chromium" >&2; \
	  exit 1; fi; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium || { \
	  echo "provision: apt-get install chromium failed (see above)" >&2; exit 1; }; \
	if [ ! -x $(CHROMIUM) ]; then \
	  echo "provision: the chromium package installed no $(CHROMIUM)" >&2; exit 1; fi; \
	echo "provision: installed $$($(CHROMIUM) --version 2>/dev/null || echo chromium)"

test: install provision lint test-postgres test-sqlite

test-postgres: install provision-postgres provision-chromium
	DATABASE_URL=$(PG_URL) $(PY) -m pytest $(PYTEST_ARGS)

test-sqlite: install provision-chromium
	@mkdir -p var
	DATABASE_URL=$(SQLITE_URL) $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run

bench: install
	@$(call ensure_postgres,$(BENCH_PG_URL))
	DATABASE_URL=$(BENCH_PG_URL) $(PY) bench/run.py

# DEBUG on: the production defaults (DEBUG off) redirect plain HTTP to HTTPS.
run: install
	DEBUG=true $(PY) manage.py runserver

clean:
	rm -rf $(VENV) var staticfiles db.sqlite3
