"""Test settings: the environment's DATABASE_URL (SQLite by default), an in-memory channel
layer and broker (the tests need no Redis) and fast password hashing."""

import os

os.environ.setdefault("SECRET_KEY", "bidir-test-secret-key-only-for-pytest")
# Production settings need a REDIS_URL, which tests never reach (the layer and the broker are
# in-memory, below): a placeholder while they load, kept from the processes tests start.
_redis_url = os.environ.get("REDIS_URL")
os.environ["REDIS_URL"] = _redis_url or "redis://redis.invalid:6379/0"

from bidir_site.settings import *  # noqa: E402,F403

if not _redis_url:
    os.environ.pop("REDIS_URL")
    REDIS_URL = ""

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_AUTOREFRESH = True
LOGGING = {"version": 1, "disable_existing_loggers": False}
# Tests never reach a real broker: tests/web/conftest.py's `queued` records the tasks; without it
# queueing a run is refused, as wherever no broker is known.
CELERY_BROKER_URL = "memory://"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file (one per test process), not Django's shared-cache in-memory database: there, while
    # a background thread writes (the sink's writer, the heartbeat), a read on another thread
    # fails at once with "database table is locked"; a file in WAL mode, as in production,
    # lets it read, and makes writers wait for each other.
    import tempfile

    DATABASES["default"]["TEST"] = {"NAME": f"{tempfile.gettempdir()}/bidir-test-{os.getpid()}.sqlite3"}  # noqa: F405
# No stale-run sweeper thread in the test process: tests sweep explicitly.
STALE_SWEEP_S = 0
# Tests replace the health checks: each /healthz checks again, unless a test turns the cache on.
HEALTH_CACHE_S = 0.0
# Tests speak plain HTTP (the test client, live servers): none of production's HTTPS-only defaults.
SECURE_SSL_REDIRECT = SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
