"""Settings of the channels-envelope benchmark project (see the package's docstring).

``bench/deferred.py`` sets ``ENVELOPE_BENCH_DB`` (a SQLite file in the run's temporary directory),
``REDIS_URL`` (a Redis database that was empty when the run chose it), ``ENVELOPE_BENCH_PREFIX``
(the channel layer's key prefix) and ``ENVELOPE_BENCH_QUEUE`` (the RQ queue).
"""

import os

SECRET_KEY = "envelope-bench-only-not-secret"
DEBUG = True  # as the channelbus demo the other cases run
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django_rq",
    "envelope",
    "envelope_site.apps.BenchConfig",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "envelope_site.urls"
ASGI_APPLICATION = "envelope_site.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("ENVELOPE_BENCH_DB", "envelope-bench.sqlite3"),
    }
}

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # socket_timeout None: redis-py 8's default of 5 s breaks the layer's blocking reads.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            "prefix": os.environ.get("ENVELOPE_BENCH_PREFIX", "envbench"),
        },
    }
}

# envelope's own deferred messages (channel.subscribe) name the queue "default": it must exist, unused.
RQ_QUEUES = {
    "default": {"URL": REDIS_URL},
    os.environ.get("ENVELOPE_BENCH_QUEUE", "envelope_bench"): {"URL": REDIS_URL},
}

# envelope's connection jobs and timestamp updates stay off (their defaults).
ENVELOPE_CONNECTIONS_QUEUE = None
ENVELOPE_TIMESTAMP_QUEUE = None

USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
