"""Django settings of the benchmark servers: plain Channels and channelbus share them.

The database is a throwaway SQLite file in ``BENCH_DB_DIR`` (``bench/run.py``
sets it to a temporary directory); no request of the benchmark reaches it.
``demoapp`` (from ``demo/``) provides the ``demo.echo`` message.
"""

import os
import tempfile
from pathlib import Path

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channelbus",
    "demoapp",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "bench_site.urls"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": Path(os.environ.get("BENCH_DB_DIR", tempfile.gettempdir())) / "bench.sqlite3",
    }
}

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# The load generator signs in as nobody and sends as fast as replies come back, from 127.0.0.1 with
# more sockets than the default cap per address.
CHANNELBUS = {"ALLOW_ANONYMOUS": True, "RATE_LIMIT": None, "MAX_CONNECTIONS_PER_ADDRESS": None}

USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
