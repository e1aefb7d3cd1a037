"""Settings, entirely from environment variables.

DATABASE_URL   any dj-database-url URL; default SQLite at var/db.sqlite3
REDIS_URL      Celery broker and channels_redis layer. Unset: the Redis of the ``make run`` running
               from this checkout on the same database (``bidir_site/local_stack.py``); else, with
               DEBUG on, in-process fallbacks, fit only for a single process, which refuse to queue
               a run; production refuses to start without one
SECRET_KEY     required unless DEBUG is on: production refuses to start without one of its own
DEBUG          1/true/yes/on to enable (local development only: ``make run`` turns it on); unset
               beside a running ``make run`` (as for REDIS_URL): that one's
ALLOWED_HOSTS  comma-separated; default localhost names when DEBUG is on, none otherwise
CSRF_TRUSTED_ORIGINS  comma-separated origins, when served behind a proxy under another name
Production (DEBUG off) is HTTPS-only by default; with DEBUG on these all default to off:
SECURE_SSL_REDIRECT      redirect http:// to https:// (default on; /healthz is exempt, for probes)
SECURE_PROXY_SSL_HEADER  behind a proxy that terminates TLS, the header it sets on HTTPS requests,
                         e.g. "X-Forwarded-Proto: https" (only if the proxy sets or strips it on
                         every request); unset: the connection's own scheme
SECURE_COOKIES           session and CSRF cookies only over HTTPS (default on)
SECURE_HSTS_SECONDS      Strict-Transport-Security max-age (default 31536000, a year; 0: no header)
SECURE_HSTS_INCLUDE_SUBDOMAINS, SECURE_HSTS_PRELOAD  that header's directives (default on)
LOG_LEVEL      default INFO
BIDIR_RUNS_DIR where runs write checkpoints and summaries; default runs/
BIDIR_STALE_AFTER_S  a running run whose heartbeat is older than this is interrupted (default 20;
                     the sink beats every 5 s)
BIDIR_STALE_SWEEP_S  how often each web process and each worker looks for such runs, and for
                     queued runs whose task is lost (default 5; 0: never)
BIDIR_LOST_TASK_AFTER_S  a queued run whose task the broker no longer holds this long after it was
                     sent is queued again (default 60)
LOGIN_FAILURE_LIMIT  failed logins after which a username, and separately a client address, is
                     locked out (default 5; django-axes)
LOGIN_LOCKOUT_MINUTES  how long such a lockout lasts (default 15); a successful login of the
                     username before it resets its count
BIDIR_MAX_ACTIVE_RUNS_PER_USER  queued + running runs one user's experiments may have; a launch or
                     resume past it is refused, saying so (default 16, one experiment of the most
                     seeds: a queue make run's one worker trains through in about an hour at the
                     default 100,000 frames a run; raise it with the workers; 0: no cap)
"""

from __future__ import annotations

import importlib.util
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from bidir_site.local_stack import stack_running

BASE_DIR = Path(__file__).resolve().parent.parent


def is_true(raw: str | None, default: bool = False) -> bool:
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_bool(name: str, default: bool = False) -> bool:
    return is_true(os.environ.get(name), default)


def env_header(name: str) -> tuple[str, str] | None:
    """``"X-Forwarded-Proto: https"`` -> ("HTTP_X_FORWARDED_PROTO", "https"), the header as
    request.META names it, and its value; None when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    header, sep, value = raw.partition(":")
    if not sep or not header.strip() or not value.strip():
        raise ImproperlyConfigured(f'{name} must look like "X-Forwarded-Proto: https", not {raw!r}')
    return "HTTP_" + header.strip().upper().replace("-", "_"), value.strip()


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if not raw:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# A process started beside `make run` (manage.py launch, celery) without REDIS_URL joins it.
LOCAL_STACK = None if os.environ.get("REDIS_URL") else stack_running(database_url=os.environ.get("DATABASE_URL", ""))

DEBUG = env_bool("DEBUG", default=is_true(LOCAL_STACK["debug"]) if LOCAL_STACK else False)
REDIS_URL = os.environ.get("REDIS_URL") or (LOCAL_STACK["redis_url"] if LOCAL_STACK else "")

DEVELOPMENT_SECRET_KEY = "django-insecure-bidir-development-key-never-use-in-production"
SECRET_KEY = os.environ.get("SECRET_KEY") or DEVELOPMENT_SECRET_KEY
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY must be set when DEBUG is off (production mode), to a secret of its own, e.g. the "
        "output of: python -c 'import secrets; print(secrets.token_urlsafe(50))'. For local development, "
        "set DEBUG=1, or start `make run` first: a process started beside it on its database uses its settings."
    )
if not DEBUG and not REDIS_URL:
    # The in-process fallbacks serve one process: runs launched from the web would never reach
    # a worker, and no page would get a live update.
    raise ImproperlyConfigured(
        "REDIS_URL must be set when DEBUG is off (production mode), e.g. redis://redishost:6379/0: the Celery broker "
        "and the channel layer that the web processes and the workers share. For local development, set DEBUG=1, "
        "or start `make run` first: a process started beside it on its database uses its settings."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "experiments_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: it answers a locked-out login
]

ROOT_URLCONF = "bidir_site.urls"
ASGI_APPLICATION = "bidir_site.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A worker writes events while the web process reads them: WAL lets both proceed, and the
    # timeout makes a writer wait for the other instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Login throttling by django-axes (a well-kept library, rather than counters of our own): the
# site's login and the admin's both go through AxesStandaloneBackend, which records each failure
# in the database and refuses a username, or a client address, after LOGIN_FAILURE_LIMIT of them
# for LOGIN_LOCKOUT_MINUTES, with a 429 page that says so.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "bidir_site.client_ip.client_ip"
AXES_USERNAME_CALLABLE = "bidir_site.client_ip.client_username"
LOGIN_REDIRECT_URL = "experiments:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Plotly's browser bundle is served from the installed plotly package (pinned in
# requirements.txt) rather than committed: the page never reaches a CDN.
PLOTLY_JS_DIR = Path(importlib.util.find_spec("plotly").submodule_search_locations[0]) / "package_data"
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor/plotly", PLOTLY_JS_DIR)]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve straight from STATICFILES_DIRS too, so `make run` works without collectstatic.
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SECURE_PROXY_SSL_HEADER = env_header("SECURE_PROXY_SSL_HEADER")
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS") or (0 if DEBUG else 365 * 24 * 3600))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
X_FRAME_OPTIONS = "DENY"

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # A consumer waits for its messages in blocking pops of 5 s (channels_redis's
            # brpop_timeout); redis-py's default 5 s socket timeout cut those reads short and
            # dropped every WebSocket that had nothing to receive for 5 s. Longer than a pop,
            # still bounded.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}], "capacity": 1000, "expiry": 30},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# A run lasts hours; Redis redelivers an unacknowledged task after this long. The task itself
# refuses a run whose heartbeat is fresh, so a redelivery never trains twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 24 * 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

RUNS_DIR = Path(os.environ.get("BIDIR_RUNS_DIR") or BASE_DIR / "runs")
STALE_AFTER_S = float(os.environ.get("BIDIR_STALE_AFTER_S", "20"))
STALE_SWEEP_S = float(os.environ.get("BIDIR_STALE_SWEEP_S", "5"))
LOST_TASK_AFTER_S = float(os.environ.get("BIDIR_LOST_TASK_AFTER_S", "60"))
MAX_SEEDS_PER_EXPERIMENT = 16
MAX_ACTIVE_RUNS_PER_USER = int(os.environ.get("BIDIR_MAX_ACTIVE_RUNS_PER_USER", "16"))
HEALTH_CACHE_S = 5.0
"""Anonymous /healthz callers get a verdict at most this old (experiments_app.health)."""

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
