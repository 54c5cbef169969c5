"""``channelbus_publish`` from a shell: what it refuses, and its warning on an in-memory layer.

Its delivery across processes through Redis is tested in ``test_processes.py``.
"""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def _publish(*args):
    out, err = StringIO(), StringIO()
    call_command("channelbus_publish", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("broadcast", "no.such", "{}"), "'no.such' is not a registered outgoing message type (known: "),
        (("broadcast", "test.greeting", "{text: 1"), "The payload is not valid JSON: "),
        (("broadcast", "test.greeting", '{"text": 5}'), "Invalid payload for test.greeting: [{'loc': "),
        (("broadcast", "test.greeting"), "Invalid payload for test.greeting: "),
    ],
)
def test_refusals_say_what_is_wrong(args, says):
    with pytest.raises(CommandError) as exc:
        _publish(*args)
    assert str(exc.value).startswith(says), str(exc.value)


@pytest.mark.parametrize(
    ("topic", "says"),
    [
        ("chat.rooom:x", "Cannot publish to 'chat.rooom:x': Unknown topic kind 'chat.rooom'. (topic kinds: "),
        ("test.num:abc", "Cannot publish to 'test.num:abc': The key of 'test.num' must be a number."),
        ("broadcast:1", "Cannot publish to 'broadcast:1': Topic kind 'broadcast' takes no key."),
    ],
)
def test_a_topic_that_nobody_can_follow_is_refused(topic, says):
    with pytest.raises(CommandError) as exc:
        _publish(topic, "test.greeting", '{"text": "x"}')
    assert str(exc.value).startswith(says), str(exc.value)


def test_a_topic_is_published_under_the_name_subscribers_use():
    out, _ = _publish("test.num:007", "test.greeting", '{"text": "x"}')
    assert out == "published test.greeting to test.num:7\n"


def test_on_the_in_memory_layer_it_publishes_and_warns_that_no_server_is_reached():
    out, err = _publish("broadcast", "test.greeting", '{"text": "hi"}')
    assert out == "published test.greeting to broadcast\n"
    assert "in-memory" in err
    assert "channels_redis" in err
