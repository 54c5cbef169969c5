"""Who serves deferred work (channelbus/jobs/serving.py): the deferred types, the default task backend, and
the line runbus prints at start-up for each kind of backend and worker."""

import pytest

from channelbus.jobs import serving
from tests.jobs.test_deferred import DB_TASKS

MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
REDIS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}


def test_deferred_types_are_the_registered_deferred_classes_once_sorted():
    names = serving.deferred_types()
    assert "test.queued_options" in names  # tests.testapp
    assert "demo.echo" not in names
    assert names == sorted(set(names))


def test_the_tests_run_on_the_immediate_backend_and_the_line_says_it_is_for_tests_only():
    assert serving.is_immediate(serving.default_backend())
    line, warns = serving.describe(worker_here=False)
    assert warns
    assert line.startswith(f"channelbus: {len(serving.deferred_types())} deferred message types (")
    assert "run on the immediate task backend, inside this server's shared sync thread" in line
    assert "for tests only. Set TASKS (system check channelbus.W007; docs/install.md)" in line


def test_the_embedded_worker(settings):
    settings.TASKS = DB_TASKS
    assert not serving.is_immediate(serving.default_backend())
    assert serving.backend_path(serving.default_backend()) == "django_tasks_db.backend.DatabaseBackend"
    line, warns = serving.describe(worker_here=True)
    assert not warns
    assert line.endswith("run on django_tasks_db.backend.DatabaseBackend, by the worker beside the server")


@pytest.mark.parametrize(("layers", "warns"), [(MEMORY, True), (REDIS, False)])
def test_worker_processes_need_a_shared_layer(settings, layers, warns):
    settings.TASKS = DB_TASKS
    settings.CHANNEL_LAYERS = layers
    line, warned = serving.describe(worker_here=False)
    assert warned is warns
    assert "by worker processes that runbus does not start" in line
    if warns:
        assert "without a shared channel layer their frames never reach this server's sockets" in line
    else:
        assert line.endswith("(their frames reach this server through the channel layer)")


def test_the_dummy_backend_never_runs_them(settings):
    module = serving.default_backend().__module__.rsplit(".backends", 1)[0]
    settings.TASKS = {"default": {"BACKEND": f"{module}.backends.dummy.DummyBackend"}}
    line, warns = serving.describe(worker_here=False)
    assert warns
    assert line.endswith(f"are queued on {module}.backends.dummy.DummyBackend, which never runs them")


def test_nothing_to_say_without_deferred_types(monkeypatch):
    for registry in serving.all_registries():
        for cls in registry.classes():
            if cls.deferred:
                monkeypatch.setattr(cls, "deferred", False)
    assert serving.describe(worker_here=False) is None


def test_no_backend_no_line(settings):
    settings.TASKS = {"default": {"BACKEND": "no.such.Backend"}}
    assert serving.default_backend() is None
    assert serving.describe(worker_here=True) is None
