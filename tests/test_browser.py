"""End to end in a real browser: sign in, run a job from the Jobs page, find its run.

Drives Debian's headless Chromium (`apt-get install chromium`; `make provision`, which
`make test` runs first, installs it)
through Playwright for Python against pytest-django's live server.
"""

import re
from pathlib import Path

import pytest
from django.test import override_settings

from cronlogs.models import Log

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "a-long-browser-test-password"


@pytest.fixture(scope="module")
def plain_http_settings():
    """Production settings assume HTTPS (redirect, secure cookies); the live server speaks
    plain HTTP. The middleware reads these when the server starts, so they must be in
    place before pytest-django's live server is."""
    with override_settings(
        SECURE_SSL_REDIRECT=False, SESSION_COOKIE_SECURE=False, CSRF_COOKIE_SECURE=False
    ):
        yield


@pytest.fixture(scope="module")
def live_server(plain_http_settings, live_server):
    return live_server


def test_it_runs_a_job_from_the_jobs_page_and_shows_it_in_cron_runs(live_server, django_user_model):
    from playwright.sync_api import expect, sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: make provision (or apt-get install -y chromium)")
    django_user_model.objects.create_superuser(email="ops@callastar.test", password=PASSWORD)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)

            # Sign in and land on the Jobs page.
            page.goto(f"{live_server.url}/admin/login/?next=/admin/cronlogs/cronjob/")
            page.fill("input[name=username]", "ops@callastar.test")
            page.fill("input[name=password]", PASSWORD)
            page.click("input[type=submit]")
            expect(page.locator("#job-cleanup-logs")).to_be_visible()

            # Run cleanup-logs by hand; the admin reports the run.
            page.click("#job-cleanup-logs input[type=submit][value='Run now']")
            expect(page.locator("ul.messagelist li.success")).to_contain_text(
                # The admin's CSS capitalises the first letter of a message.
                re.compile("cleanup-logs: done", re.IGNORECASE)
            )

            # The run is in "Cron runs", started by the admin.
            page.click("ul.messagelist a")
            expect(page.locator("body")).to_contain_text('"trigger": "admin"')
            page.goto(f"{live_server.url}/admin/cronlogs/cronrun/")
            first_row = page.locator("#result_list tbody tr").first
            expect(first_row).to_contain_text("cleanup-logs")
            expect(first_row).to_contain_text("admin")
        finally:
            browser.close()

    row = Log.objects.get(type="CRON_RUN")
    assert (row.context["cronType"], row.context["trigger"]) == ("cleanup-logs", "admin")
