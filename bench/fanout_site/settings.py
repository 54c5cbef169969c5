"""Settings of the fan-out benchmark servers; the channel layer is chosen by ``FANOUT_LAYER``.

* ``memory``: Channels' ``InMemoryChannelLayer`` (channelbus then delivers in-process only);
* ``pubsub``: channels_redis ``RedisPubSubChannelLayer``;
* ``redis``: channels_redis ``RedisChannelLayer`` (hosts with ``socket_timeout=None``: redis-py 8's
  default of 5 s breaks its blocking receive, django/channels_redis#422).

``FANOUT_REDIS_URL`` (default ``redis://127.0.0.1:6379``) and ``FANOUT_REDIS_PREFIX`` (unique per
server, set by ``bench/fanout.py``) configure the Redis layers. The database is a throwaway SQLite
file in ``FANOUT_DB_DIR``; no request of the benchmark queries it.
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
    "fanout_site",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "fanout_site.urls"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": Path(os.environ.get("FANOUT_DB_DIR", tempfile.gettempdir())) / "fanout.sqlite3",
    }
}

LAYER = os.environ.get("FANOUT_LAYER", "memory")
REDIS_URL = os.environ.get("FANOUT_REDIS_URL", "redis://127.0.0.1:6379")
REDIS_PREFIX = os.environ.get("FANOUT_REDIS_PREFIX", "fanout")
_REDIS_HOSTS = [{"address": REDIS_URL, "socket_timeout": None}]

if LAYER == "memory":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
elif LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": _REDIS_HOSTS, "prefix": REDIS_PREFIX},
        }
    }
elif LAYER == "redis":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": _REDIS_HOSTS, "prefix": REDIS_PREFIX},
        }
    }
else:
    raise ValueError(f"FANOUT_LAYER must be memory, pubsub or redis, not {LAYER!r}")

# The load client is signed out and sends as fast as the broadcasts complete. FANOUT_RAW_FRAMES=0
# (asgi_bus_asgisend.py) turns the pre-built frames off: every delivery is an ASGI send.
CHANNELBUS = {
    "ALLOW_ANONYMOUS": True,
    "RATE_LIMIT": None,
    "MAX_TOPICS_PER_CONNECTION": 100,
    "RAW_FRAMES": os.environ.get("FANOUT_RAW_FRAMES", "1") != "0",
    # Thousands of signed-out sockets from 127.0.0.1: no cap per address (a real app keeps one).
    "MAX_CONNECTIONS_PER_ADDRESS": None,
}
# FANOUT_HISTORY_SIZE (asgi_bus_history.py): every topic keeps its last N frames (issue 12).
if os.environ.get("FANOUT_HISTORY_SIZE"):
    CHANNELBUS["TOPIC_HISTORY_SIZE"] = int(os.environ["FANOUT_HISTORY_SIZE"])

USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
