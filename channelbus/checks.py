"""System checks for channelbus configuration (``python manage.py check``).

* ``channelbus.E001`` unknown key in ``CHANNELBUS``
* ``channelbus.E002`` two message classes registered under one type name
* ``channelbus.E003`` a setting has a value of the wrong kind
* ``channelbus.W001`` no channel layer configured (``CHANNEL_LAYERS``)
* ``channelbus.W002`` the in-memory channel layer in a multi-process deployment
* ``channelbus.W003`` channels_redis's ``RedisChannelLayer`` with redis-py 8's 5 s socket timeout
* ``channelbus.E004`` two topic kinds registered under one name
* ``channelbus.E005`` a message class's ``timeout`` is not None or a positive number of seconds
* ``channelbus.E006`` a topic kind's ``history_size``, ``history_ttl`` or ``presence`` is of the wrong kind
* ``channelbus.E007`` a message class's ``schema`` is not a pydantic model, a form or a serializer (or
  has a file field)
* ``channelbus.W004`` the job queue is a SQLite database without ``transaction_mode: IMMEDIATE``
* ``channelbus.W005`` jobs run in worker processes (RQ, Celery...) but the channel layer is in-memory
* ``channelbus.W006`` ``ALLOWED_ORIGINS`` allows any origin (``"*"``): no cross-site protection
* ``channelbus.W007`` deferred message types run on the immediate task backend (no ``TASKS``): in the server
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import DEFAULTS, settings
from .messages import all_registries
from .messages.schemas import schema_problem
from .server.origin import ANY_ORIGIN, parse_origin
from .topics import topic_kinds

__all__ = [
    "check_allowed_origins",
    "check_channel_layer",
    "check_deferred_backend",
    "check_history_settings",
    "check_job_settings",
    "check_message_schemas",
    "check_message_timeouts",
    "check_presence_settings",
    "check_registries",
    "check_settings",
    "check_topic_kinds",
    "check_worker_layer",
]

_POSITIVE_INT = (
    "MAX_FRAME_BYTES",
    "RATE_BURST",
    "FLOOD_CLOSE_AFTER",
    "MAX_CONCURRENT_HANDLERS",
    "MAX_QUEUED_MESSAGES",
    "TOKEN_MAX_AGE",
    "MAX_TOPICS_PER_CONNECTION",
    "TOPIC_TOKEN_MAX_AGE",
    "STRICT_ORDER_TIMEOUT",
    "ACTIVITY_INTERVAL",
    "CLIENT_ERROR_LOG_LINES",
    "CLIENT_ERROR_LOG_INTERVAL",
    "OUTBOX_MAX_FRAMES",
    "OUTBOX_MAX_BYTES",
    "RECOVERY_MAX_FRAMES",
)

#: Numbers of seconds (or sizes) that 0 turns off: a number 0 or more (None too where noted).
_NUMBER_OR_OFF = {"TOPIC_HISTORY_TTL": False, "IDEMPOTENCY_WINDOW": True}

#: Limits that None turns off.
_POSITIVE_INT_OR_NONE = ("MAX_CONNECTIONS_PER_USER", "MAX_CONNECTIONS_PER_ADDRESS")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E001: unknown keys; E003: values of the wrong kind."""
    errors: list[Error] = []
    user = settings.user_settings()
    for key in sorted(set(user) - set(DEFAULTS)):
        errors.append(
            Error(
                f"Unknown channelbus setting CHANNELBUS[{key!r}].",
                hint=f"Known settings: {', '.join(sorted(DEFAULTS))} (see docs/settings.md).",
                id="channelbus.E001",
            )
        )
    for key in _POSITIVE_INT:
        value = user.get(key, DEFAULTS[key])
        if not _positive_int(value):
            errors.append(
                Error(f"CHANNELBUS[{key!r}] must be a positive integer, not {value!r}.", id="channelbus.E003")
            )
    for key in _POSITIVE_INT_OR_NONE:
        value = user.get(key, DEFAULTS[key])
        if value is not None and not _positive_int(value):
            errors.append(
                Error(
                    f"CHANNELBUS[{key!r}] must be a positive integer or None, not {value!r}.",
                    id="channelbus.E003",
                )
            )
    rate = user.get("RATE_LIMIT", DEFAULTS["RATE_LIMIT"])
    if rate is not None and not (isinstance(rate, int | float) and not isinstance(rate, bool) and rate > 0):
        errors.append(
            Error(
                f"CHANNELBUS['RATE_LIMIT'] must be a positive number or None, not {rate!r}.",
                id="channelbus.E003",
            )
        )
    grace = user.get("SLOW_CLIENT_GRACE", DEFAULTS["SLOW_CLIENT_GRACE"])
    if not (isinstance(grace, int | float) and not isinstance(grace, bool) and grace > 0):
        errors.append(
            Error(
                f"CHANNELBUS['SLOW_CLIENT_GRACE'] must be a positive number of seconds, not {grace!r}.",
                id="channelbus.E003",
            )
        )
    url = user.get("URL", DEFAULTS["URL"])
    if not isinstance(url, str) or url.startswith("/"):
        errors.append(
            Error(
                f"CHANNELBUS['URL'] must be a path without a leading slash, like 'ws/', not {url!r}.",
                id="channelbus.E003",
            )
        )
    return errors


@register(Tags.compatibility)
def check_history_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E003: a topic history or idempotency setting of the wrong kind."""
    errors: list[Error] = []
    user = settings.user_settings()
    size = user.get("TOPIC_HISTORY_SIZE", DEFAULTS["TOPIC_HISTORY_SIZE"])
    if not (isinstance(size, int) and not isinstance(size, bool) and size >= 0):
        errors.append(
            Error(
                f"CHANNELBUS['TOPIC_HISTORY_SIZE'] must be an integer, 0 (no history) or more, not {size!r}.",
                id="channelbus.E003",
            )
        )
    for key, none_ok in _NUMBER_OR_OFF.items():
        value = user.get(key, DEFAULTS[key])
        if value is None and none_ok:
            continue
        if not (isinstance(value, int | float) and not isinstance(value, bool) and value >= 0):
            errors.append(
                Error(
                    f"CHANNELBUS[{key!r}] must be a number of seconds, 0 or more"
                    f"{' (or None)' if none_ok else ''}, not {value!r}.",
                    id="channelbus.E003",
                )
            )
    return errors


@register(Tags.security)
def check_allowed_origins(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E003: ``ALLOWED_ORIGINS`` is not None, ``"*"`` or a list of origins; W006: it allows any origin."""
    value = settings.user_settings().get("ALLOWED_ORIGINS", DEFAULTS["ALLOWED_ORIGINS"])
    if value is None:
        return []
    entries = [value] if value == ANY_ORIGIN else value
    if not isinstance(entries, list | tuple) or not all(isinstance(entry, str) for entry in entries):
        bad = [value]
    else:
        bad = [entry for entry in entries if entry != ANY_ORIGIN and parse_origin(entry) is None]
    if bad:
        return [
            Error(
                f"CHANNELBUS['ALLOWED_ORIGINS'] must be None, '*' or a list of origins, not {bad[0]!r}.",
                hint="An origin is a scheme, a host and a port if not the scheme's own, like "
                "'https://app.example.com' or 'http://localhost:8000': no path, not even '/' "
                "(docs/settings.md).",
                id="channelbus.E003",
            )
        ]
    if ANY_ORIGIN in entries:
        return [
            Warning(
                "CHANNELBUS['ALLOWED_ORIGINS'] allows any origin ('*'): a page of any site can open a socket "
                "with your users' session cookie and send messages as them.",
                hint="List the origins of your pages, like ['https://app.example.com'], or remove the "
                "setting to allow the request's own origin only (docs/settings.md).",
                id="channelbus.W006",
            )
        ]
    return []


@register(Tags.compatibility)
def check_registries(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E002: one type name registered by two classes, in any registry."""
    errors: list[Error] = []
    for registry in all_registries():
        for name, kept, refused in registry.conflicts:
            errors.append(
                Error(
                    f"Message type {name!r} is registered twice in the {registry.name} registry: "
                    f"{kept.__module__}.{kept.__qualname__} and {refused.__module__}.{refused.__qualname__}.",
                    hint="Rename one, or pass replace=True to register() to replace the first on purpose.",
                    id="channelbus.E002",
                )
            )
    return errors


@register(Tags.compatibility)
def check_message_timeouts(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E005: a registered message class's ``timeout`` is not None or a positive number."""
    errors: list[Error] = []
    seen: set[type] = set()
    for registry in all_registries():
        for cls in registry.classes():
            timeout = cls.timeout
            if cls in seen or timeout is None:
                continue
            seen.add(cls)
            if not (isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0):
                errors.append(
                    Error(
                        f"{cls.__module__}.{cls.__qualname__}.timeout must be None or a positive number "
                        f"of seconds, not {timeout!r}.",
                        hint="Set timeout = None for no limit (docs/deferred.md).",
                        obj=cls,
                        id="channelbus.E005",
                    )
                )
    return errors


@register(Tags.compatibility)
def check_message_schemas(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E007: a registered message class's ``schema`` is neither a pydantic model, a Django form nor a DRF
    serializer class, or is a form or serializer with a file field."""
    problems = {
        cls: problem
        for registry in all_registries()
        for cls in registry.classes()
        if (problem := schema_problem(cls.schema)) is not None
    }
    return [
        Error(
            f"{cls.__module__}.{cls.__qualname__} ({cls.name}): {problem}",
            hint="A message's schema is a pydantic BaseModel, a Django Form or a DRF Serializer class "
            "(docs/schema.md).",
            obj=cls,
            id="channelbus.E007",
        )
        for cls, problem in problems.items()
    ]


@register(Tags.compatibility)
def check_channel_layer(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """W001: no channel layer; W002: in-memory layer with several processes."""
    layers = getattr(django_settings, "CHANNEL_LAYERS", None) or {}
    default = layers.get("default")
    if not default:
        return [
            Warning(
                "No channel layer is configured: messages reach sockets of this process only, never "
                "those of other processes or publishes from a shell.",
                hint="Set CHANNEL_LAYERS = {'default': {'BACKEND': 'channels.layers.InMemoryChannelLayer'}} "
                "for one process (the embedded default), or channels_redis when there are several server "
                "or worker processes (channelbus's docs/settings.md).",
                id="channelbus.W001",
            )
        ]
    backend = str(default.get("BACKEND", ""))
    if backend.endswith("core.RedisChannelLayer") and _redis_py_major() >= 8:
        hosts = (default.get("CONFIG") or {}).get("hosts") or ["redis://localhost:6379"]
        if any(
            not (isinstance(h, dict) and "socket_timeout" in h and h["socket_timeout"] is None) for h in hosts
        ):
            return [
                Warning(
                    "RedisChannelLayer with redis-py 8's default socket_timeout of 5 s: its blocking reads "
                    "time out on quiet connections and may lose messages.",
                    hint='Write each host as {"address": "redis://...", "socket_timeout": None} '
                    "(docs/deployment.md).",
                    id="channelbus.W003",
                )
            ]
    processes = _process_count()
    if backend.endswith("InMemoryChannelLayer") and processes > 1:
        return [
            Warning(
                f"The in-memory channel layer is used with {processes} server processes: "
                "messages published in one process never reach sockets of the others.",
                hint="Use channels_redis (pip install 'channelbus[redis]') when running several processes.",
                id="channelbus.W002",
            )
        ]
    return []


#: Task backends whose jobs run in the process that serves the sockets (the immediate backend, runbus's
#: embedded django_tasks_db worker) or not at all (the dummy backend).
_IN_PROCESS_TASK_BACKENDS = ("ImmediateBackend", "DummyBackend", "django_tasks_db.DatabaseBackend")


@register(Tags.compatibility)
def check_worker_layer(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """W005: jobs run in worker processes, but the channel layer cannot reach other processes."""
    layers = getattr(django_settings, "CHANNEL_LAYERS", None) or {}
    layer = str((layers.get("default") or {}).get("BACKEND", ""))
    if layer and not layer.endswith("InMemoryChannelLayer"):
        return []
    tasks = getattr(django_settings, "TASKS", None) or {}
    backend = str((tasks.get("default") or {}).get("BACKEND", ""))
    if not backend or backend.endswith(_IN_PROCESS_TASK_BACKENDS):
        return []
    return [
        Warning(
            f"TASKS['default'] ({backend}) runs deferred jobs in worker processes, but the channel layer "
            f"is {'in-memory' if layer else 'not configured'}: the workers' r, progress, s and error.job "
            "frames, and what their handlers publish, never reach the sockets.",
            hint="Use channels_redis in CHANNEL_LAYERS (pip install 'channelbus[redis]'), the same for "
            "the servers and the workers (channelbus's docs/deployment.md).",
            id="channelbus.W005",
        )
    ]


@register(Tags.database)
def check_sqlite_queue(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """W004: django_tasks_db queues jobs in a SQLite database whose transactions are not IMMEDIATE."""
    try:
        from django_tasks_db.backend import DatabaseBackend
    except ImportError:
        return []
    from django.db import router
    from django.utils.module_loading import import_string

    warnings = []
    tasks = getattr(django_settings, "TASKS", None) or {}
    for name, config in tasks.items():
        try:
            backend = import_string(str((config or {}).get("BACKEND", "")))
        except ImportError:
            continue  # Django's own task checks report a backend that does not import
        if not (isinstance(backend, type) and issubclass(backend, DatabaseBackend)):
            continue
        from django_tasks_db.models import DBTaskResult

        alias = router.db_for_write(DBTaskResult)
        database: Mapping[str, Any] = django_settings.DATABASES.get(alias) or {}
        if not str(database.get("ENGINE", "")).endswith("sqlite3"):
            continue
        if str((database.get("OPTIONS") or {}).get("transaction_mode", "")).upper() != "IMMEDIATE":
            warnings.append(
                Warning(
                    f"TASKS[{name!r}] queues jobs in the SQLite database {alias!r} without "
                    "transaction_mode 'IMMEDIATE': the server and a worker writing at once can fail "
                    "with 'database is locked'.",
                    hint=f'In DATABASES[{alias!r}]["OPTIONS"] set "transaction_mode": "IMMEDIATE", '
                    '"timeout": 20 and "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" '
                    "(channelbus's docs/settings.md, TASKS).",
                    id="channelbus.W004",
                )
            )
    return warnings


def _redis_py_major() -> int:
    try:
        import redis
    except ImportError:
        return 0
    try:
        return int(str(redis.__version__).split(".")[0])
    except ValueError:
        return 0


@register(Tags.compatibility)
def check_topic_kinds(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E004: one topic kind registered by two classes; E006: a kind's history or presence of a wrong kind."""
    return (
        _history_errors()
        + _presence_errors()
        + [
            Error(
                f"Topic kind {kind!r} is registered twice: {kept.__module__}.{kept.__qualname__} and "
                f"{refused.__module__}.{refused.__qualname__}.",
                hint="Rename one, or pass replace=True to register() to replace the first on purpose.",
                id="channelbus.E004",
            )
            for kind, kept, refused in topic_kinds.conflicts
        ]
    )


def _history_errors() -> list[Error]:
    errors: list[Error] = []
    for kind in topic_kinds:
        cls = topic_kinds.get(kind)
        size, ttl = getattr(cls, "history_size", None), getattr(cls, "history_ttl", None)
        good_size = size is None or (isinstance(size, int) and not isinstance(size, bool) and size >= 0)
        good_ttl = ttl is None or (isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl > 0)
        if not (good_size and good_ttl):
            errors.append(
                Error(
                    f"Topic kind {kind!r} has history_size={size!r}, history_ttl={ttl!r}.",
                    hint="history_size is None (the setting) or an integer 0 (no history) or more; "
                    "history_ttl is None or a positive number of seconds (see docs/topics.md).",
                    obj=cls,
                    id="channelbus.E006",
                )
            )
    return errors


def _presence_errors() -> list[Error]:
    errors: list[Error] = []
    for kind in topic_kinds:
        cls = topic_kinds.get(kind)
        value = getattr(cls, "presence", False)
        if not (isinstance(value, bool) or callable(value)):
            errors.append(
                Error(
                    f"Topic kind {kind!r} has presence={value!r}.",
                    hint="presence is False, True, or a function of the user that returns the member's "
                    "public info as a dict (see docs/presence.md).",
                    obj=cls,
                    id="channelbus.E006",
                )
            )
    return errors


def _process_count() -> int:
    """Server processes, as far as the environment tells (uvicorn/gunicorn ``WEB_CONCURRENCY``)."""
    try:
        return int(os.environ.get("WEB_CONCURRENCY", "1"))
    except ValueError:
        return 1


#: Job settings (channelbus.jobs): name -> (what it must be, None allowed, 0 allowed, whole numbers only).
_JOB_SETTINGS = {
    "MAX_JOBS_PER_CONNECTION": ("a positive integer or None", True, False, True),
    "MAX_JOBS_PER_USER": ("a positive integer or None", True, False, True),
    "JOB_REAP_AFTER": ("a positive number of seconds or None", True, False, False),
    "JOB_REAP_GRACE": ("a number of seconds, 0 or more", False, True, False),
    "JOB_REAP_INTERVAL": ("a positive number of seconds or None", True, False, False),
}


@register(Tags.compatibility)
def check_job_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E003: a job cap or reaper setting of the wrong kind (see docs/settings.md, deferred jobs)."""
    errors: list[Error] = []
    user = settings.user_settings()
    for key, (what, none_ok, zero_ok, whole) in _JOB_SETTINGS.items():
        value = user.get(key, DEFAULTS[key])
        number = isinstance(value, int if whole else int | float) and not isinstance(value, bool)
        if (value is None and none_ok) or (number and (value > 0 or (zero_ok and value == 0))):
            continue
        errors.append(Error(f"CHANNELBUS[{key!r}] must be {what}, not {value!r}.", id="channelbus.E003"))
    return errors


@register(Tags.compatibility)
def check_presence_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E003: a presence setting of the wrong kind, or an expiry shorter than three intervals."""
    user = settings.user_settings()
    values = {key: user.get(key, DEFAULTS[key]) for key in _PRESENCE_SETTINGS}
    errors = [
        Error(f"CHANNELBUS[{key!r}] must be {what}, not {values[key]!r}.", id="channelbus.E003")
        for key, (what, whole) in _PRESENCE_SETTINGS.items()
        if not _positive_number(values[key], whole)
    ]
    interval, expiry = values["PRESENCE_INTERVAL"], values["PRESENCE_EXPIRY"]
    if not errors and expiry < 3 * interval:
        # A process renews its entry every expiry / 3 (or every interval, if longer): with less room a
        # live process could be taken for dead between two renewals.
        errors.append(
            Error(
                f"CHANNELBUS['PRESENCE_EXPIRY'] ({expiry!r}) must be at least 3 x PRESENCE_INTERVAL "
                f"({interval!r}).",
                id="channelbus.E003",
            )
        )
    return errors


#: Presence settings (channelbus.transport.presence): name -> (what it must be, whole numbers only).
_PRESENCE_SETTINGS = {
    "PRESENCE_INTERVAL": ("a positive number of seconds", False),
    "PRESENCE_EXPIRY": ("a positive number of seconds", False),
    "PRESENCE_MAX_MEMBERS": ("a positive integer", True),
    "PRESENCE_MAX_INFO_BYTES": ("a positive integer", True),
}


def _positive_number(value: Any, whole: bool) -> bool:
    return isinstance(value, int if whole else int | float) and not isinstance(value, bool) and value > 0


@register(Tags.compatibility)
def check_layer_check_interval(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """E003: ``LAYER_CHECK_INTERVAL`` is not a number of seconds (0 or more) or None."""
    value = settings.user_settings().get("LAYER_CHECK_INTERVAL", DEFAULTS["LAYER_CHECK_INTERVAL"])
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool) and value >= 0):
        return []
    return [
        Error(
            f"CHANNELBUS['LAYER_CHECK_INTERVAL'] must be a number of seconds (0 or more) or None, "
            f"not {value!r}.",
            id="channelbus.E003",
        )
    ]


#: What W007's hint asks for: the embedded default (docs/install.md has the whole settings block).
_TASKS_SNIPPET = (
    'INSTALLED_APPS += ["django_tasks_db"] (and "django_tasks" on Django 5.2); '
    'TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}; then manage.py migrate'
)


@register(Tags.compatibility)
def check_deferred_backend(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """W007: deferred message types exist, and the default task backend is the immediate one."""
    from .jobs.serving import default_backend, deferred_types, is_immediate

    names = deferred_types()
    if not names or not is_immediate(default_backend()):
        return []
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    source = "TASKS" if getattr(django_settings, "TASKS", None) else "Django's default: no TASKS setting"
    return [
        Warning(
            f"Deferred message types ({shown}) run on the immediate task backend ({source}): each job runs "
            "inside the server's shared sync thread, one at a time, and every connection of the process "
            "waits for it.",
            hint="Queue them in the database and let runbus run a worker beside the server: "
            f"{_TASKS_SNIPPET} (channelbus's docs/install.md). In test settings the immediate backend is "
            'right: add "channelbus.W007" to SILENCED_SYSTEM_CHECKS there.',
            id="channelbus.W007",
        )
    ]
