"""channelbus settings (channelbus/conf.py): the CHANNELBUS dict over the defaults, read at call time, and
read again when Django's setting_changed fires for CHANNELBUS."""

import pytest
from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.test import override_settings

from channelbus.conf import DEFAULTS, BusSettings, settings
from channelbus.protocol import DEFAULT_MAX_FRAME_BYTES


def test_defaults():
    assert django_settings.CHANNELBUS == {}  # tests/settings.py sets nothing
    assert settings.URL == "ws/"
    assert settings.ALLOW_ANONYMOUS is False
    assert settings.MAX_FRAME_BYTES == DEFAULT_MAX_FRAME_BYTES
    assert (settings.RATE_LIMIT, settings.RATE_BURST) == (50.0, 100)
    assert settings.TOKEN_MAX_AGE == 3600
    assert settings.STRICT_ORDER_TIMEOUT == 60
    assert settings.TRACK_CONNECTIONS is False
    assert settings.RAW_FRAMES is True
    assert {name: getattr(settings, name) for name in DEFAULTS} == DEFAULTS


def test_a_project_value_wins_and_is_read_at_call_time():
    with override_settings(CHANNELBUS={"RATE_LIMIT": None, "URL": "bus/"}):
        assert settings.RATE_LIMIT is None
        assert settings.URL == "bus/"
        assert settings.RATE_BURST == 100  # the others keep their defaults
    assert settings.RATE_LIMIT == 50.0
    assert settings.URL == "ws/"


def test_no_channelbus_setting_at_all_gives_the_defaults():
    with override_settings():
        del django_settings.CHANNELBUS
        fresh = BusSettings()
        assert fresh.user_settings() == {}
        assert fresh.URL == "ws/"


def test_values_are_cached_until_setting_changed_fires_for_channelbus():
    project = {"URL": "a/"}
    with override_settings(CHANNELBUS=project):
        assert settings.URL == "a/"
        project["URL"] = "b/"  # changed behind Django's back: the cache still holds the old value
        assert settings.URL == "a/"
        setting_changed.send(sender=None, setting="TIME_ZONE", value="UTC", enter=True)
        assert settings.URL == "a/"  # another setting changed: not reloaded
        setting_changed.send(sender=None, setting="CHANNELBUS", value=project, enter=True)
        assert settings.URL == "b/"
    assert settings.URL == "ws/"


def test_reload_forgets_the_cache():
    project = {"MAX_TOPICS_PER_CONNECTION": 5}
    with override_settings(CHANNELBUS=project):
        assert settings.MAX_TOPICS_PER_CONNECTION == 5
        project["MAX_TOPICS_PER_CONNECTION"] = 7
        settings.reload()
        assert settings.MAX_TOPICS_PER_CONNECTION == 7


def test_unknown_and_private_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="Unknown channelbus setting 'NO_SUCH_SETTING'"):
        settings.NO_SUCH_SETTING  # noqa: B018
    with pytest.raises(AttributeError):
        settings._private  # noqa: B018
    assert not hasattr(settings, "__wrapped__")  # introspection does not trip over __getattr__


def test_user_settings_is_a_copy():
    with override_settings(CHANNELBUS={"URL": "a/"}):
        settings.user_settings()["URL"] = "changed/"
        assert django_settings.CHANNELBUS == {"URL": "a/"}
