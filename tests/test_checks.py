"""System checks."""

import pytest
from django.test import override_settings

from channelbus import Message, incoming
from channelbus.checks import (
    check_allowed_origins,
    check_channel_layer,
    check_registries,
    check_settings,
    check_sqlite_queue,
    check_worker_layer,
)


def ids(messages):
    return [m.id for m in messages]


def test_defaults_pass():
    assert check_settings() == []
    assert check_registries() == []
    assert check_channel_layer() == []


@override_settings(CHANNELBUS={"MAX_FRAME_BYTE": 10})
def test_unknown_key():
    errors = check_settings()
    assert ids(errors) == ["channelbus.E001"]
    assert "MAX_FRAME_BYTE" in errors[0].msg
    assert "MAX_FRAME_BYTES" in errors[0].hint


@override_settings(CHANNELBUS={"MAX_FRAME_BYTES": 0, "RATE_LIMIT": "fast", "URL": "/ws/"})
def test_bad_values():
    assert ids(check_settings()) == ["channelbus.E003"] * 3


@pytest.mark.parametrize("key", ["MAX_CONNECTIONS_PER_USER", "MAX_CONNECTIONS_PER_ADDRESS"])
def test_connection_limits_are_positive_integers_or_none(key):
    for good in (None, 1, 500):
        with override_settings(CHANNELBUS={key: good}):
            assert check_settings() == []
    for bad in (0, -1, 2.5, True, "50"):
        with override_settings(CHANNELBUS={key: bad}):
            [error] = check_settings()
        assert error.msg == f"CHANNELBUS[{key!r}] must be a positive integer or None, not {bad!r}."


@pytest.mark.parametrize("key", ["OUTBOX_MAX_FRAMES", "OUTBOX_MAX_BYTES"])
def test_outbox_limits_are_positive_integers(key):
    with override_settings(CHANNELBUS={key: 10}):
        assert check_settings() == []
    for bad in (0, None, 2.5, True):
        with override_settings(CHANNELBUS={key: bad}):
            [error] = check_settings()
        assert error.msg == f"CHANNELBUS[{key!r}] must be a positive integer, not {bad!r}."


def test_slow_client_grace_is_a_positive_number():
    for good in (0.5, 5):
        with override_settings(CHANNELBUS={"SLOW_CLIENT_GRACE": good}):
            assert check_settings() == []
    for bad in (0, -1, None, True, "5"):
        with override_settings(CHANNELBUS={"SLOW_CLIENT_GRACE": bad}):
            [error] = check_settings()
        assert (
            error.msg == f"CHANNELBUS['SLOW_CLIENT_GRACE'] must be a positive number of seconds, not {bad!r}."
        )


@pytest.mark.parametrize(
    "value", [None, [], ["https://app.example.com"], ("http://localhost:8000", "https://[::1]:8443")]
)
def test_allowed_origins_that_pass(value):
    with override_settings(CHANNELBUS={"ALLOWED_ORIGINS": value}):
        assert check_allowed_origins() == []


@pytest.mark.parametrize("value", ["*", ["*"], ["https://app.example.com", "*"]])
def test_allowed_origins_star_is_warned_about(value):
    with override_settings(CHANNELBUS={"ALLOWED_ORIGINS": value}):
        [warning] = check_allowed_origins()
    assert warning.id == "channelbus.W006"
    assert "allows any origin ('*')" in warning.msg
    assert "['https://app.example.com']" in warning.hint


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("https://app.example.com", "'https://app.example.com'"),  # a string, not a list
        (["app.example.com"], "'app.example.com'"),  # a host, not an origin
        (["https://ok.example", "https://ok.example/"], "'https://ok.example/'"),
        ([42], "[42]"),
        ({"https://ok.example"}, "{'https://ok.example'}"),
    ],
)
def test_allowed_origins_that_are_no_origins_are_errors(value, named):
    with override_settings(CHANNELBUS={"ALLOWED_ORIGINS": value}):
        [error] = check_allowed_origins()
    assert error.id == "channelbus.E003"
    assert error.msg == f"CHANNELBUS['ALLOWED_ORIGINS'] must be None, '*' or a list of origins, not {named}."


def test_duplicate_type_name_in_a_custom_registry():
    from channelbus import Registry

    class A(Message):
        name = "x.same"

    class B(Message):
        name = "x.same"

    custom = Registry("custom")
    custom.register(A)
    custom.register(B)
    assert ids(check_registries()) == ["channelbus.E002"]


def test_duplicate_type_name():
    class EchoAgain(Message):
        name = "demo.echo"

    incoming.register(EchoAgain)
    try:
        errors = check_registries()
        assert ids(errors) == ["channelbus.E002"]
        assert "demo.echo" in errors[0].msg
        assert "EchoAgain" in errors[0].msg
    finally:
        incoming.conflicts.clear()


@override_settings(CHANNEL_LAYERS={})
def test_no_channel_layer():
    assert ids(check_channel_layer()) == ["channelbus.W001"]


def test_in_memory_layer_with_several_processes(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    assert ids(check_channel_layer()) == ["channelbus.W002"]


@override_settings(
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:6379"]},
        }
    }
)
def test_redis_layer_without_socket_timeout_none():
    assert ids(check_channel_layer()) == ["channelbus.W003"]


@override_settings(
    CHANNEL_LAYERS={
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:6379", "socket_timeout": None}]},
        }
    }
)
def test_redis_layer_configured_well():
    assert check_channel_layer() == []


def test_duplicate_topic_kind():
    from channelbus.checks import check_topic_kinds
    from channelbus.topics import Topic, topic_kinds

    class RoomAgain(Topic):
        kind = "test.room"

    topic_kinds.register(RoomAgain)
    try:
        assert ids(check_topic_kinds()) == ["channelbus.E004"]
    finally:
        topic_kinds.conflicts.clear()


@pytest.mark.parametrize(
    ("size", "ttl", "good"),
    [
        (None, None, True),
        (0, None, True),
        (200, 60, True),
        (10, 0.5, True),
        (-1, None, False),
        (True, None, False),
        ("100", None, False),
        (1.5, None, False),
        (10, 0, False),
        (10, -5, False),
        (10, "60", False),
    ],
)
def test_topic_history_attributes(size, ttl, good):
    from channelbus.checks import check_topic_kinds
    from channelbus.topics import Topic, topic_kinds

    class Kept(Topic):
        kind = "test.kept"
        history_size = size
        history_ttl = ttl

    topic_kinds.register(Kept)
    try:
        assert ids(check_topic_kinds()) == ([] if good else ["channelbus.E006"])
    finally:
        topic_kinds.unregister("test.kept")


@pytest.mark.parametrize(
    ("key", "value", "good"),
    [
        ("TOPIC_HISTORY_SIZE", 0, True),
        ("TOPIC_HISTORY_SIZE", 100, True),
        ("TOPIC_HISTORY_SIZE", -1, False),
        ("TOPIC_HISTORY_SIZE", 1.5, False),
        ("TOPIC_HISTORY_TTL", 0, True),
        ("TOPIC_HISTORY_TTL", 30.5, True),
        ("TOPIC_HISTORY_TTL", None, False),
        ("TOPIC_HISTORY_TTL", "120", False),
        ("IDEMPOTENCY_WINDOW", None, True),
        ("IDEMPOTENCY_WINDOW", 0, True),
        ("IDEMPOTENCY_WINDOW", -1, False),
        ("IDEMPOTENCY_WINDOW", True, False),
        ("RECOVERY_MAX_FRAMES", 0, False),
        ("RECOVERY_MAX_FRAMES", 500, True),
    ],
)
def test_history_settings(key, value, good):
    from channelbus.checks import check_history_settings, check_settings

    with override_settings(CHANNELBUS={key: value}):
        found = ids(check_history_settings()) + ids(check_settings())
    assert found == ([] if good else ["channelbus.E003"])


def test_message_timeouts():
    from channelbus import Registry
    from channelbus.checks import check_message_timeouts

    assert check_message_timeouts() == []

    class NoLimit(Message):
        name = "x.no_limit"
        deferred = True
        timeout = None

    class Fine(Message):
        name = "x.fine"
        deferred = True
        timeout = 2.5

    class Zero(Message):
        name = "x.zero"
        deferred = True
        timeout = 0

    class Text(Message):
        name = "x.text"
        deferred = True
        timeout = "30"  # type: ignore[assignment]

    custom = Registry("custom timeouts")
    for cls in (NoLimit, Fine, Zero, Text):
        custom.register(cls)
    errors = check_message_timeouts()
    assert ids(errors) == ["channelbus.E005"] * 2
    assert [e.obj for e in errors] == [Zero, Text]
    assert "Zero.timeout must be None or a positive number of seconds, not 0" in errors[0].msg


DB_QUEUE = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_sqlite_job_queue_without_immediate_transactions(settings):
    settings.TASKS = DB_QUEUE  # the test database is SQLite without OPTIONS
    warnings = check_sqlite_queue()
    assert ids(warnings) == ["channelbus.W004"]
    assert "database is locked" in warnings[0].msg
    assert '"transaction_mode": "IMMEDIATE"' in warnings[0].hint
    settings.DATABASES = {
        "default": {**settings.DATABASES["default"], "OPTIONS": {"transaction_mode": "IMMEDIATE"}}
    }
    assert check_sqlite_queue() == []


def test_no_sqlite_warning_for_other_task_backends():
    assert check_sqlite_queue() == []  # the test settings use the immediate backend


RQ_QUEUE = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
REDIS_LAYER = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer"}}
MEMORY_LAYER = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.mark.parametrize(
    ("tasks", "layers", "warned"),
    [
        (RQ_QUEUE, MEMORY_LAYER, True),
        (RQ_QUEUE, {}, True),
        (RQ_QUEUE, REDIS_LAYER, False),
        (DB_QUEUE, MEMORY_LAYER, False),  # runbus's worker thread
        ({}, {}, False),  # the immediate backend: jobs run in the server
    ],
)
def test_worker_processes_need_a_shared_channel_layer(settings, tasks, layers, warned):
    settings.TASKS = tasks
    settings.CHANNEL_LAYERS = layers
    warnings = check_worker_layer()
    assert ids(warnings) == (["channelbus.W005"] if warned else [])
    if warned:
        assert "django_tasks_rq.RQBackend" in warnings[0].msg
        assert "never reach the sockets" in warnings[0].msg
        assert "channels_redis" in warnings[0].hint


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("MAX_JOBS_PER_CONNECTION", None, True),
        ("MAX_JOBS_PER_CONNECTION", 1, True),
        ("MAX_JOBS_PER_CONNECTION", 0, False),
        ("MAX_JOBS_PER_USER", 2.5, False),
        ("MAX_JOBS_PER_USER", True, False),
        ("JOB_REAP_AFTER", 0.5, True),
        ("JOB_REAP_AFTER", -1, False),
        ("JOB_REAP_GRACE", 0, True),
        ("JOB_REAP_GRACE", None, False),
        ("JOB_REAP_INTERVAL", None, True),
        ("JOB_REAP_INTERVAL", "30", False),
    ],
)
def test_job_settings_of_the_wrong_kind_are_errors(settings, key, value, ok):
    from channelbus.checks import check_job_settings

    settings.CHANNELBUS = {key: value}
    errors = check_job_settings()
    assert ids(errors) == ([] if ok else ["channelbus.E003"])
    if not ok:
        assert errors[0].msg.startswith(f"CHANNELBUS[{key!r}] must be ")


@pytest.mark.parametrize(
    ("value", "ok"),
    [(1.0, True), (2, True), (0, True), (None, True), (-1, False), ("1", False), (True, False)],
)
def test_layer_check_interval_of_the_wrong_kind_is_an_error(settings, value, ok):
    from channelbus.checks import check_layer_check_interval

    settings.CHANNELBUS = {"LAYER_CHECK_INTERVAL": value}
    errors = check_layer_check_interval()
    assert ids(errors) == ([] if ok else ["channelbus.E003"])


# -------------------------------------------------------------- W007: deferred work on the immediate backend


def test_deferred_types_on_the_immediate_backend_warn_with_the_fix():
    """The tests' own settings are the mistake: deferred types (tests.testapp) and the immediate backend."""
    from channelbus.checks import check_deferred_backend

    [warning] = check_deferred_backend()
    assert warning.id == "channelbus.W007"
    assert warning.msg.startswith("Deferred message types (")
    assert "test.queued_options" in warning.msg or ", ...)" in warning.msg
    assert "run on the immediate task backend (TASKS): each job runs inside the server's" in warning.msg
    assert 'TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}' in warning.hint
    assert "SILENCED_SYSTEM_CHECKS" in warning.hint


def test_without_a_tasks_setting_the_warning_says_it_is_djangos_default(settings):
    from channelbus.checks import check_deferred_backend

    del settings.TASKS
    [warning] = check_deferred_backend()
    assert "(Django's default: no TASKS setting)" in warning.msg


def test_deferred_types_on_a_real_queue_pass(settings):
    from channelbus.checks import check_deferred_backend

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    assert check_deferred_backend() == []


def test_the_immediate_backend_without_deferred_types_passes(monkeypatch):
    from channelbus import checks
    from channelbus.jobs import serving

    deferred = [cls for registry in serving.all_registries() for cls in registry.classes() if cls.deferred]
    for cls in deferred:
        monkeypatch.setattr(cls, "deferred", False)
    assert serving.deferred_types() == []
    assert checks.check_deferred_backend() == []


@pytest.mark.parametrize(
    ("values", "good"),
    [
        ({}, True),
        ({"PRESENCE_INTERVAL": 0.5, "PRESENCE_EXPIRY": 1.5}, True),
        ({"PRESENCE_INTERVAL": 1, "PRESENCE_EXPIRY": 2}, False),  # < 3 intervals: a live process may expire
        ({"PRESENCE_INTERVAL": 0}, False),
        ({"PRESENCE_INTERVAL": "1"}, False),
        ({"PRESENCE_EXPIRY": None}, False),
        ({"PRESENCE_MAX_MEMBERS": 10}, True),
        ({"PRESENCE_MAX_MEMBERS": 1.5}, False),
        ({"PRESENCE_MAX_INFO_BYTES": 0}, False),
        ({"PRESENCE_MAX_INFO_BYTES": True}, False),
    ],
)
def test_presence_settings(values, good):
    from channelbus.checks import check_presence_settings

    with override_settings(CHANNELBUS=values):
        found = ids(check_presence_settings())
    assert found == ([] if good else ["channelbus.E003"])


@pytest.mark.parametrize(
    ("presence", "good"), [(False, True), (True, True), (dict, True), ("yes", False), (1, False)]
)
def test_topic_presence_attribute(presence, good):
    from channelbus.checks import check_topic_kinds
    from channelbus.topics import Topic, topic_kinds

    class Present(Topic):
        kind = "test.present"

    Present.presence = presence
    topic_kinds.register(Present)
    try:
        assert ids(check_topic_kinds()) == ([] if good else ["channelbus.E006"])
    finally:
        topic_kinds.unregister("test.present")


@pytest.mark.django_db  # the whole `check` runs too, and on Django 6 one of its checks reads the database
def test_a_message_schema_that_is_neither_pydantic_a_form_nor_a_serializer_fails_the_checks():
    from django import forms
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    from channelbus import Registry
    from channelbus.checks import check_message_schemas

    class Upload(forms.Form):
        picture = forms.FileField()

    class Loose(Message):
        name = "x.loose"
        schema = dict  # defined without complaint: the check reports it

    class Uploading(Message):
        name = "x.uploading"
        schema = Upload

    assert check_message_schemas() == []  # the project's own schemas are fine (the demo's form too)
    custom = Registry("custom schemas")
    for cls in (Loose, Uploading):
        custom.register(cls)
    errors = check_message_schemas()
    assert ids(errors) == ["channelbus.E007"] * 2
    assert [e.obj for e in errors] == [Loose, Uploading]
    assert errors[0].msg.endswith(
        "Loose (x.loose): schema = <class 'dict'> is not a pydantic BaseModel subclass, a Django Form class "
        "or a DRF Serializer class."
    )
    assert "Upload.picture is a FileField: files cannot travel in a JSON payload" in errors[1].msg
    assert "docs/schema.md" in errors[0].hint
    with pytest.raises(SystemCheckError, match=r"channelbus\.E007"):
        call_command("check")  # what runbus and manage.py runserver run at start
