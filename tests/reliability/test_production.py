"""Production settings (issue 4, item 8), each read by a fresh Python process from a production
environment, as a deployment would: DEBUG off unless explicitly on, HTTPS only by default
(secure cookies, HSTS, redirect to https:// but for /healthz, the scheme from a proxy's header
when one is configured), the secret from the environment and no start without one of its own
or without a REDIS_URL, and ``manage.py check --deploy`` clean with the variables the README
documents. ``make run`` (DEBUG on, plain HTTP on 127.0.0.1) keeps working."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_VARIABLES = {
    "SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "DJANGO_SETTINGS_MODULE",
    "SECURE_COOKIES", "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER", "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
}
DOCUMENTED = {"SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "bidir.example.org",
              "REDIS_URL": "redis://redis.invalid:6379/0"}
"""The production variables the README documents (with DATABASE_URL, which check --deploy
does not look at; these tests reach no Redis)."""
HTTPS_SETTINGS = ("DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
                  "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER")
SHOW_SETTINGS = f"""
import json, bidir_site.settings as s
print(json.dumps({{name: getattr(s, name) for name in {HTTPS_SETTINGS!r}}}))
"""


def python(code_or_args: str | list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Python in a fresh process, in the repository, with only ``env`` of the settings'
    variables (the database in ``tmp_path``)."""
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    clean.update(DJANGO_SETTINGS_MODULE="bidir_site.settings", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", **env)
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_the_documented_production_variables(tmp_path, report) -> None:
    result = python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path, **DOCUMENTED)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    report(f"manage.py check --deploy with {sorted(DOCUMENTED)} set: {result.stdout.strip()}")


@pytest.mark.parametrize("env", [
    pytest.param({}, id="missing"),
    pytest.param({"SECRET_KEY": ""}, id="empty"),
    pytest.param({"SECRET_KEY": "django-insecure-bidir-development-key-never-use-in-production"}, id="the-development-key"),
    pytest.param({"DEBUG": "0"}, id="debug-0"),
    pytest.param({"DEBUG": "false"}, id="debug-false"),
])
def test_production_refuses_to_start_without_a_secret_of_its_own(tmp_path, env) -> None:
    # The first case as a deployment starts; the others only read the settings, which is where it fails.
    command = ["manage.py", "check"] if not env else "import bidir_site.settings"
    result = python(command, tmp_path, ALLOWED_HOSTS="bidir.example.org", **env)
    assert result.returncode != 0
    assert "django.core.exceptions.ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off" in result.stderr
    assert "secrets.token_urlsafe" in result.stderr, "the message says how to make one"


@pytest.mark.parametrize("redis_url", [pytest.param(None, id="missing"), pytest.param("", id="empty")])
def test_production_refuses_to_start_without_redis(tmp_path, redis_url) -> None:
    env = {name: value for name, value in DOCUMENTED.items() if name != "REDIS_URL"}
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    result = python(["manage.py", "check"], tmp_path, **env)
    assert result.returncode != 0
    assert "django.core.exceptions.ImproperlyConfigured: REDIS_URL must be set when DEBUG is off" in result.stderr
    if redis_url is None:
        assert python(["manage.py", "check"], tmp_path, **env, DEBUG="1").returncode == 0, "development needs none"


@pytest.mark.parametrize("env, expected", [
    pytest.param(DOCUMENTED, {"DEBUG": False, "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True,
                              "SECURE_SSL_REDIRECT": True, "SECURE_HSTS_SECONDS": 31_536_000,
                              "SECURE_HSTS_INCLUDE_SUBDOMAINS": True, "SECURE_HSTS_PRELOAD": True,
                              "SECURE_PROXY_SSL_HEADER": None}, id="production-defaults"),
    pytest.param({**DOCUMENTED, "DEBUG": "junk"}, {"DEBUG": False, "SECURE_SSL_REDIRECT": True}, id="debug-only-when-explicit"),
    pytest.param({"DEBUG": "1"}, {"DEBUG": True, "SESSION_COOKIE_SECURE": False, "CSRF_COOKIE_SECURE": False,
                                  "SECURE_SSL_REDIRECT": False, "SECURE_HSTS_SECONDS": 0}, id="make-run"),
    pytest.param({**DOCUMENTED, "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto: https", "SECURE_HSTS_SECONDS": "3600",
                  "SECURE_HSTS_PRELOAD": "0", "SECURE_SSL_REDIRECT": "off", "SECURE_COOKIES": "no"},
                 {"SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"], "SECURE_HSTS_SECONDS": 3600,
                  "SECURE_HSTS_PRELOAD": False, "SECURE_SSL_REDIRECT": False, "SESSION_COOKIE_SECURE": False},
                 id="each-configurable"),
])
def test_https_settings(tmp_path, env, expected) -> None:
    result = python(SHOW_SETTINGS, tmp_path, **env)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert {name: values[name] for name in expected} == expected


def test_a_malformed_proxy_header_setting_is_refused_clearly(tmp_path) -> None:
    result = python(SHOW_SETTINGS, tmp_path, **DOCUMENTED, SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto")
    assert result.returncode != 0 and 'SECURE_PROXY_SSL_HEADER must look like "X-Forwarded-Proto: https"' in result.stderr


SERVE = """
import json, django
django.setup()
from django.test import Client
from experiments_app import health
health.CHECKS = {}  # no database, broker or worker here: only the redirect rule is under test
site = Client(HTTP_HOST="bidir.example.org")
plain = site.get("/accounts/login/")
proxied = site.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
missing = site.get("/no-such-page/", HTTP_X_FORWARDED_PROTO="https")
print(json.dumps({
    "plain": [plain.status_code, plain.get("Location")],
    "healthz": site.get("/healthz").status_code,
    "proxied": [proxied.status_code, proxied.get("Strict-Transport-Security"), str(proxied.cookies["csrftoken"]),
                proxied.get("X-Frame-Options"), proxied.get("X-Content-Type-Options")],
    "missing": [missing.status_code, "URLconf" in missing.content.decode()],
    "other host": Client(HTTP_HOST="evil.example").get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https").status_code,
}))
"""


def test_production_serves_https_only_behind_a_proxy(tmp_path, report) -> None:
    result = python(SERVE, tmp_path, **DOCUMENTED, SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https")
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert answers["plain"] == [301, "https://bidir.example.org/accounts/login/"]
    assert answers["healthz"] == 200, "probes over plain HTTP are not redirected"
    status, hsts, cookie, frames, sniff = answers["proxied"]
    assert status == 200 and hsts == "max-age=31536000; includeSubDomains; preload"
    assert "Secure" in cookie and "SameSite=Lax" in cookie and (frames, sniff) == ("DENY", "nosniff")
    assert answers["missing"] == [404, False], "no debug page"
    assert answers["other host"] == 400
    report(f"production over a TLS proxy: http -> {answers['plain'][0]} https, /healthz {answers['healthz']}, "
           f"HSTS '{hsts}', CSRF cookie Secure, no debug page, unknown Host {answers['other host']}")
