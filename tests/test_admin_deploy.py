"""Production serving: `check --deploy` is clean, and gunicorn serves the admin, its static
files (whitenoise) and the cron endpoints with DEBUG off."""

import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.processes import PROJECT_DIR, run_manage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def production_env(subprocess_env, tmp_path):
    return {
        **subprocess_env,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "jobs.callastar.test,127.0.0.1",
        "CSRF_TRUSTED_ORIGINS": "https://jobs.callastar.test",
        "STATIC_ROOT": str(tmp_path / "static"),
        "CRON_SECRET": secrets.token_urlsafe(32),
    }


@pytest.fixture
def deployable_env(production_env):
    """production_env with what `check --deploy` also wants: email that is delivered,
    public links, someone to alert and PostgreSQL (not contacted by `check`)."""
    return {
        **production_env,
        "EMAIL_URL": "smtp+tls://mailer:password@smtp.callastar.test:587",
        "APP_URL": "https://callastar.test",
        "ADMINS": "Ops <ops@callastar.test>",
        "DATABASE_URL": "postgres://callastar@db.callastar.test:5432/callastar",
    }


def test_it_passes_the_deployment_checks_in_production(deployable_env):
    checked = run_manage(["check", "--deploy", "--fail-level", "WARNING"], deployable_env)
    assert checked.returncode == 0, checked.stderr

    # It should still catch a weak key: the check is live, not silenced.
    weak = {**deployable_env, "SECRET_KEY": "short"}
    refused = run_manage(["check", "--deploy", "--fail-level", "WARNING"], weak)
    assert refused.returncode != 0
    assert "security.W009" in refused.stderr


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url, **headers):
    request = urllib.request.Request(url, headers={"X-Forwarded-Proto": "https", **headers})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_it_serves_the_admin_static_files_and_endpoints_under_gunicorn(production_env):
    collected = run_manage(["collectstatic", "--noinput"], production_env)
    assert collected.returncode == 0, collected.stderr
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "callastar.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--timeout",
            "60",
        ],
        cwd=PROJECT_DIR,
        env=production_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)

        # The admin login page, behind a TLS proxy (X-Forwarded-Proto: https).
        status, headers, body = fetch(f"{base}/admin/login/")
        assert status == 200
        assert headers["Strict-Transport-Security"].startswith("max-age=")
        stylesheet = next(
            part.split('"')[0]
            for part in body.decode().split('href="')[1:]
            if part.startswith("/static/admin/css/base.")
        )
        # Whitenoise serves the hashed, collected file with a long cache lifetime.
        status, headers, css = fetch(base + stylesheet)
        assert status == 200 and b"body" in css
        assert "max-age=315360000" in headers["Cache-Control"]

        # The endpoints answer without a secret only with readiness, never with a run.
        assert fetch(f"{base}/api/cron/cleanup-logs")[0] == 200
        status, _, _ = fetch(f"{base}/api/cron/health")
        assert status in (200, 503)
        plain = urllib.request.Request(f"{base}/admin/login/")
        with pytest.raises(urllib.error.HTTPError) as redirected:
            urllib.request.build_opener(NoRedirect).open(plain, timeout=5)
        assert redirected.value.code == 301  # plain HTTP is sent to HTTPS
    finally:
        server.terminate()
        server.wait(timeout=10)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
