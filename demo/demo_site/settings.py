"""Settings of the channelbus demo: the embedded default (SQLite, in-memory channel layer)."""

import os
from importlib.util import find_spec
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "demo-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    *([] if find_spec("django.tasks") else ["django_tasks"]),  # the Tasks API backport on Django 5.2
    "django_tasks_db",
    "channelbus",
    "demoapp",
    # Extra apps for end-to-end tests (comma-separated), e.g. "tests.testapp".
    *filter(None, os.environ.get("DEMO_EXTRA_APPS", "").split(",")),
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "demo_site.urls"
ASGI_APPLICATION = "demo_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DB", BASE_DIR / "db.sqlite3"),
        # The server and the embedded worker thread write at once: WAL lets reads go on during a write,
        # IMMEDIATE transactions wait for the lock (up to timeout s) instead of failing with "database is
        # locked" when a read turns into a write (docs/deployment.md).
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
}

# The embedded default: in-process. DEMO_CHANNEL_LAYER=redis or redis-pubsub runs several
# server processes against the Redis at REDIS_URL (docs/deployment.md).
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
_layer = os.environ.get("DEMO_CHANNEL_LAYER", "memory")
if _layer == "redis":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # socket_timeout None: redis-py 8's default of 5 s breaks the layer's blocking reads.
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "prefix": os.environ.get("DEMO_REDIS_PREFIX", "asgi"),
            },
        }
    }
elif _layer == "redis-pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL}],
                "prefix": os.environ.get("DEMO_REDIS_PREFIX", "asgi"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

if os.environ.get("DEMO_POSTGRES_DB"):  # several worker processes want a real database server
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["DEMO_POSTGRES_DB"],
        "HOST": os.environ.get("DEMO_POSTGRES_HOST", "127.0.0.1"),
        "USER": os.environ.get("DEMO_POSTGRES_USER", "postgres"),
    }

# Strictly ordered deferred messages handled by several worker processes need a cache they share.
if os.environ.get("DEMO_CACHE") == "redis":
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

CHANNELBUS: dict = {}
if os.environ.get("DEMO_STRICT_ORDER_TIMEOUT"):
    CHANNELBUS["STRICT_ORDER_TIMEOUT"] = int(os.environ["DEMO_STRICT_ORDER_TIMEOUT"])

# The embedded default queue: jobs in the same SQLite database; `manage.py runbus` runs a worker
# beside the server. DEMO_TASKS=rq uses RQ on Redis (start `manage.py rqworker`).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
if os.environ.get("DEMO_TASKS") == "rq":  # production-like: RQ on Redis (docs/deferred.md)
    INSTALLED_APPS.append("django_rq")
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    RQ_QUEUES = {"default": {"URL": REDIS_URL}}

STATIC_URL = "static/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"channelbus": {"handlers": ["console"], "level": "INFO"}},
}
