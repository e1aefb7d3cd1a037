"""Test settings: the environment's DATABASE_URL (SQLite by default), an in-memory channel
layer (the consumer tests need no Redis) and fast password hashing."""

import os

os.environ.setdefault("SECRET_KEY", "bidir-test-secret-key-only-for-pytest")

from bidir_site.settings import *  # noqa: E402,F403

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_AUTOREFRESH = True
LOGGING = {"version": 1, "disable_existing_loggers": False}
# Tests never reach a real broker: queued tasks are recorded by tests/web/conftest.py.
CELERY_BROKER_URL = "memory://"
