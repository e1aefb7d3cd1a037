import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from bidir_site.local_stack import stack_erase, stack_file, stack_record
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


@pytest.fixture
def database_url(tmp_path) -> Iterator[str]:
    """A database of the test's own, so that its stack file (var/) is the test's own too."""
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    yield url
    stack_file(database_url=url).unlink(missing_ok=True)


def test_beside_a_running_make_run_its_redis_and_debug_are_used(database_url):
    stack_record(database_url=database_url, redis_url="redis://127.0.0.1:6399/0", debug="1")  # by this live process
    result = settings_in_subprocess(DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    debug, *_, layer, broker = result.stdout.split()
    assert (debug, layer, broker) == ("True", "channels_redis.core.RedisChannelLayer", "redis://127.0.0.1:6399/0")
    # A make run in production mode (its own SECRET_KEY): its Redis is the one production requires.
    stack_record(database_url=database_url, redis_url="redis://127.0.0.1:6399/0", debug="")
    result = settings_in_subprocess(DATABASE_URL=database_url, SECRET_KEY="s3cret")
    assert result.returncode == 0, result.stderr
    debug, *_, broker = result.stdout.split()
    assert (debug, broker) == ("False", "redis://127.0.0.1:6399/0")


@pytest.mark.parametrize("case", ["REDIS_URL is set", "on another database", "its launcher is dead", "unreadable"])
def test_a_make_run_is_not_joined(database_url, tmp_path, case):
    env = {"SECRET_KEY": "s3cret", "DATABASE_URL": database_url}
    stack_record(database_url=database_url, redis_url="redis://127.0.0.1:6399/0", debug="1")
    if case == "REDIS_URL is set":
        env["REDIS_URL"] = "redis://127.0.0.1:6400/0"
    elif case == "on another database":
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    elif case == "its launcher is dead":
        dead = subprocess.Popen([sys.executable, "-c", ""])
        dead.wait()
        recorded = {"pid": dead.pid, "redis_url": "redis://127.0.0.1:6399/0", "debug": "1"}
        stack_file(database_url=database_url).write_text(json.dumps(recorded))
    else:
        stack_file(database_url=database_url).write_text('{"pid": ')
    result = settings_in_subprocess(**env)
    if case == "REDIS_URL is set":
        assert result.returncode == 0, result.stderr
        debug, *_, broker = result.stdout.split()
        assert (debug, broker) == ("False", env["REDIS_URL"])
    else:  # production settings, on their own
        assert result.returncode != 0 and "REDIS_URL must be set when DEBUG is off" in result.stderr


def test_make_run_removes_only_the_file_it_wrote(database_url):
    path = stack_record(database_url=database_url, redis_url="redis://127.0.0.1:6399/0", debug="1")
    stack_erase(database_url=database_url)
    assert not path.exists()
    path.write_text('{"pid": 1, "redis_url": "redis://127.0.0.1:6400/0", "debug": "1"}')  # another launcher's since
    stack_erase(database_url=database_url)
    assert path.exists()


def test_createteamuser_reads_the_password_from_stdin(db, monkeypatch, client):
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-long-test-password-42\n"))
    call_command("createteamuser", "erin", "--team", "E", "--password-stdin", stdout=io.StringIO())
    assert Membership.objects.get(user__username="erin", team__name="E").role == Membership.Role.ADMIN
    assert client.post("/accounts/login/", {"username": "erin", "password": "a-long-test-password-42"}).status_code == 302
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    with pytest.raises(CommandError, match="too short"):
        call_command("createteamuser", "frank", "--password-stdin", stdout=io.StringIO())
