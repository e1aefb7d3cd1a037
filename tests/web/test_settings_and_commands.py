import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from experiments_app.models import Membership

ROOT = Path(__file__).resolve().parents[2]


def settings_in_subprocess(**env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"}}
    code = "import bidir_site.settings as s; print(s.DEBUG, s.ALLOWED_HOSTS, s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'], s.CELERY_BROKER_URL)"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True)


def test_production_mode_refuses_the_development_secret():
    result = settings_in_subprocess()
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_settings_come_from_the_environment():
    result = settings_in_subprocess(
        SECRET_KEY="s3cret", ALLOWED_HOSTS="bidir.example,localhost",
        DATABASE_URL="postgres://u@127.0.0.1:5432/x", REDIS_URL="redis://127.0.0.1:6379/1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "False", "['bidir.example',", "'localhost']", "django.db.backends.postgresql",
        "channels_redis.core.RedisChannelLayer", "redis://127.0.0.1:6379/1",
    ]


def test_debug_defaults_to_sqlite_and_in_process_fallbacks():
    result = settings_in_subprocess(DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert "django.db.backends.sqlite3 channels.layers.InMemoryChannelLayer memory://" in result.stdout


def test_createteamuser_reads_the_password_from_stdin(db, monkeypatch, client):
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-long-test-password-42\n"))
    call_command("createteamuser", "erin", "--team", "E", "--password-stdin", stdout=io.StringIO())
    assert Membership.objects.get(user__username="erin", team__name="E").role == Membership.Role.ADMIN
    assert client.login(username="erin", password="a-long-test-password-42")
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    with pytest.raises(CommandError, match="too short"):
        call_command("createteamuser", "frank", "--password-stdin", stdout=io.StringIO())
