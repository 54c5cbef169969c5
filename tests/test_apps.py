"""The app configuration (channelbus/apps.py): ready() registers the built-in messages and topic kinds,
autodiscovers every installed app's ``messages`` and ``topics`` modules, registers the system checks, and
imports the channel layer's backend class ahead of a forking worker."""

import sys

from django.apps import apps
from django.core.checks.registry import registry as checks_registry
from django.test import override_settings

from channelbus.apps import ChannelbusConfig, _import_layer_backends
from channelbus.messages import all_registries, incoming, outgoing
from channelbus.topics import topic_kinds

DOM = {
    "dom.text",
    "dom.html",
    "dom.append_html",
    "dom.prepend_html",
    "dom.append",
    "dom.prepend",
    "dom.remove",
    "dom.attr",
    "dom.add_class",
    "dom.remove_class",
    "dom.value",
    "dom.focus",
    "dom.scroll",
    "dom.notice",
}


def test_the_app_config():
    config = apps.get_app_config("channelbus")
    assert isinstance(config, ChannelbusConfig)
    assert config.default_auto_field == "django.db.models.BigAutoField"


def test_built_in_control_messages_are_registered():
    assert {"s.ping", "topic.subscribe", "topic.leave", "topic.list"} <= set(incoming)
    assert {"s.pong", "topic.subscribed", "topic.left", "topic.subscriptions"} <= set(outgoing)
    assert incoming.get("s.ping").control


def test_dom_messages_are_registered_outgoing_only():
    assert set(outgoing) >= DOM
    assert {name for name in outgoing if name.startswith("dom.")} == DOM
    assert not any(name.startswith("dom.") for name in incoming)


def test_installed_apps_messages_and_topics_are_autodiscovered():
    from demoapp.messages import Echo

    from tests.testapp.messages import Greet, Slow
    from tests.testapp.topics import Room

    assert incoming.get("test.slow") is Slow
    assert outgoing.get("test.greeting") is Greet
    assert incoming.get("demo.echo") is Echo
    assert topic_kinds.get("test.room") is Room
    assert "user" in topic_kinds
    assert "tests.testapp.messages" in sys.modules
    assert "demoapp.topics" in sys.modules


def test_the_job_code_and_system_checks_are_loaded():
    assert {"channelbus.jobs.deferred", "channelbus.jobs.tracking", "channelbus.checks"} <= set(sys.modules)
    modules = {check.__module__ for check in checks_registry.registered_checks}
    assert "channelbus.checks" in modules


def test_ready_again_changes_nothing():
    before = {registry.name: dict.fromkeys(registry) for registry in all_registries()}
    classes = {registry.name: registry.classes() for registry in all_registries()}
    apps.get_app_config("channelbus").ready()
    assert {registry.name: dict.fromkeys(registry) for registry in all_registries()} == before
    assert {registry.name: registry.classes() for registry in all_registries()} == classes
    assert all(registry.conflicts == [] for registry in all_registries())


def test_the_channel_layer_backend_is_imported_at_setup(monkeypatch):
    import channels_redis

    # Imported afresh here; the module other tests use is put back afterwards.
    monkeypatch.delitem(sys.modules, "channels_redis.pubsub", raising=False)
    monkeypatch.delattr(channels_redis, "pubsub", raising=False)
    with override_settings(
        CHANNEL_LAYERS={"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer"}}
    ):
        _import_layer_backends()  # imports the class; opens no connection (no Redis runs here)
    assert "channels_redis.pubsub" in sys.modules


def test_a_wrong_or_odd_layer_configuration_is_left_for_channels_to_report():
    odd = {
        "wrong": {"BACKEND": "no.such.module.Layer"},
        "not_a_dict": "channels.layers.InMemoryChannelLayer",
        "no_backend": {},
        "not_a_string": {"BACKEND": 7},
    }
    with override_settings(CHANNEL_LAYERS=odd):
        assert _import_layer_backends() is None  # raises nothing
    with override_settings(CHANNEL_LAYERS=None):
        assert _import_layer_backends() is None
    assert "no.such.module" not in sys.modules
