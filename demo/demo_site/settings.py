"""Settings of the channelbus demo: the embedded default (SQLite, in-memory channel layer)."""

import os
from importlib.util import find_spec
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent


def choice(name: str, choices: tuple[str, ...]) -> str:
    """The environment variable ``name``: one of ``choices`` (the first is the default), or refused."""
    value = os.environ.get(name) or choices[0]
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of {', '.join(map(repr, choices))}.")
    return value


def secret_key(path: Path) -> str:
    """This installation's own key: read from ``path``, made (random, mode 0600) on first use.

    Several processes starting at once agree on one key: each writes a file of its own and links it to
    ``path``, which only the first link creates.
    """
    if not path.exists():
        draft = path.with_name(f"{path.name}.{os.getpid()}")
        draft.write_text(get_random_secret_key() + "\n")
        draft.chmod(0o600)
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            draft.unlink()
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty: delete it and a new key is made.")
    return key


# Never committed: made per installation in demo/.secret_key (git-ignored), or DEMO_SECRET_KEY_FILE.
SECRET_KEY = secret_key(Path(os.environ.get("DEMO_SECRET_KEY_FILE") or BASE_DIR / ".secret_key"))
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
_layer = choice("DEMO_CHANNEL_LAYER", ("memory", "redis", "redis-pubsub"))
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

# Several server and worker processes need a cache they share: for the job caps, strict ordering and
# repeated requests (docs/deployment.md).
if choice("DEMO_CACHE", ("locmem", "redis")) == "redis":
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("DEMO_REDIS_PREFIX", ""),
        }
    }

CHANNELBUS: dict = {}
# The message contract at /channelbus/asyncapi/ (AsyncAPI 3.0, and a page), for staff users: sign in at
# /login/ as a user made with `manage.py createsuperuser` (demo guests are not staff).
CHANNELBUS["SCHEMA_VIEW"] = True
LOGIN_URL = "login"
if os.environ.get("DEMO_HISTORY_TTL"):  # seconds a chat room keeps its frames for reconnecting tabs
    CHANNELBUS["TOPIC_HISTORY_TTL"] = float(os.environ["DEMO_HISTORY_TTL"])
if os.environ.get("DEMO_PRESENCE_EXPIRY"):  # seconds until a killed process's room members leave
    CHANNELBUS["PRESENCE_EXPIRY"] = float(os.environ["DEMO_PRESENCE_EXPIRY"])
if os.environ.get("DEMO_PRESENCE_INTERVAL"):  # seconds between two presence.diff of one room
    CHANNELBUS["PRESENCE_INTERVAL"] = float(os.environ["DEMO_PRESENCE_INTERVAL"])
if os.environ.get("DEMO_STRICT_ORDER_TIMEOUT"):
    CHANNELBUS["STRICT_ORDER_TIMEOUT"] = int(os.environ["DEMO_STRICT_ORDER_TIMEOUT"])

# The embedded default queue: jobs in the same SQLite database; `manage.py runbus` runs a worker
# beside the server. DEMO_TASKS=rq uses RQ on Redis (start `manage.py rqworker`).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
if choice("DEMO_TASKS", ("db", "rq")) == "rq":  # production-like: RQ on Redis (docs/deferred.md)
    INSTALLED_APPS.append("django_rq")
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    RQ_QUEUES = {"default": {"URL": REDIS_URL}}

# Guest users GET / may create per client address and minute; beyond it the page answers 429.
DEMO_GUESTS_PER_MINUTE = int(os.environ.get("DEMO_GUESTS_PER_MINUTE") or 10)

STATIC_URL = "static/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"channelbus": {"handlers": ["console"], "level": "INFO"}},
}
