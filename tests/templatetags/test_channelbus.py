"""The template tags of channelbus/templatetags/channelbus.py: ``{% channelbus_client %}`` (the browser
client's JSON configuration, with a signed topic token, and its script tag) and ``{% channelbus_bind %}``
(the escaped ``data-bus-*`` attributes)."""

import datetime
import json
import re
from decimal import Decimal
from html import unescape

import pytest
from django.template import Context, Template, TemplateSyntaxError
from django.test import override_settings

from channelbus.templatetags.channelbus import CONFIG_ELEMENT_ID, SCRIPT_PATH, client_config
from channelbus.topics.tokens import topics_from_token


def render(source, **context):
    return Template("{% load channelbus %}" + source).render(Context(context))


def config_in(html):
    """The JSON configuration the client reads from the page."""
    match = re.search(rf'<script id="{CONFIG_ELEMENT_ID}" type="application/json">(.*?)</script>', html)
    assert match, html
    return json.loads(match.group(1))


@override_settings(STATIC_URL="/static/")
def test_client_tag_without_topics():
    html = render("{% channelbus_client %}")
    assert html == (
        '<script id="channelbus-config" type="application/json">{"url": "/ws/", "token": null}</script>\n'
        '<script src="/static/channelbus/channelbus.js" defer></script>'
    )
    assert SCRIPT_PATH == "channelbus/channelbus.js"


@override_settings(CHANNELBUS={"URL": "live/bus/"})
def test_the_url_follows_the_setting_with_one_leading_slash():
    assert config_in(render("{% channelbus_client %}"))["url"] == "/live/bus/"
    with override_settings(CHANNELBUS={"URL": "/already/"}):
        assert client_config()["url"] == "/already/"


@pytest.mark.parametrize(
    "topics",
    ['"broadcast, test.room:lobby"', "names"],
)
def test_client_tag_with_topics_signs_them_into_the_token(topics):
    html = render(f"{{% channelbus_client topics={topics} %}}", names=["broadcast", " test.room:lobby ", ""])
    config = config_in(html)
    assert config["url"] == "/ws/"
    assert topics_from_token(config["token"]) == ["broadcast", "test.room:lobby"]


@pytest.mark.django_db
def test_users_in_the_topic_list_name_their_own_topic(user):
    config = config_in(render("{% channelbus_client topics=names %}", names=[user]))
    assert topics_from_token(config["token"]) == [f"user:{user.pk}"]


def test_an_empty_topic_list_gives_no_token():
    assert client_config("") == {"url": "/ws/", "token": None}
    assert client_config([" ", ""]) == {"url": "/ws/", "token": None}


def test_a_topic_of_an_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        render('{% channelbus_client topics="no.such.kind:1" %}')


def test_the_config_cannot_break_out_of_its_script_element():
    with override_settings(CHANNELBUS={"URL": "</script><script>alert(1)</script>/"}):
        html = render("{% channelbus_client %}")
    assert "<script>alert" not in html
    assert config_in(html)["url"] == "/</script><script>alert(1)</script>/"


def test_bind_writes_the_type_event_payload_and_reset():
    html = render(
        '<form {% channelbus_bind "chat.send" event="submit" payload=payload reset=True %}>',
        payload={"room": "lobby"},
    )
    assert html == (
        '<form data-bus-type="chat.send" data-bus-event="submit" '
        'data-bus-payload="{&quot;room&quot;: &quot;lobby&quot;}" data-bus-reset>'
    )


def test_bind_with_the_type_only_leaves_the_rest_to_the_client():
    assert render('{% channelbus_bind "board.delete" %}') == 'data-bus-type="board.delete"'


def test_bind_escapes_what_it_writes():
    html = render(
        '{% channelbus_bind "chat.send" event=event payload=payload %}',
        event='click" onclick="x',
        payload={"text": '<b>"hi" & bye</b>'},
    )
    assert "onclick=" not in html.replace("onclick=&quot;", "")
    assert "<b>" not in html
    attrs = {name: unescape(value) for name, value in re.findall(r'(data-bus-[a-z]+)="([^"]*)"', html)}
    assert set(attrs) == {"data-bus-type", "data-bus-event", "data-bus-payload"}
    assert attrs["data-bus-event"] == 'click" onclick="x'
    assert json.loads(attrs["data-bus-payload"]) == {"text": '<b>"hi" & bye</b>'}


def test_bind_encodes_dates_and_decimals():
    html = render(
        '{% channelbus_bind "board.add" payload=payload %}',
        payload={"day": datetime.date(2026, 1, 2), "price": Decimal("1.50")},
    )
    assert (
        'data-bus-payload="{&quot;day&quot;: &quot;2026-01-02&quot;, &quot;price&quot;: &quot;1.50&quot;}"'
        in html
    )


@pytest.mark.parametrize(
    ("source", "context", "error"),
    [
        ('{% channelbus_bind "Chat Send" %}', {}, "is not a message type"),
        ("{% channelbus_bind name %}", {"name": 7}, "is not a message type"),
        ('{% channelbus_bind "chat.send" payload=payload %}', {"payload": [1, 2]}, "must be a JSON object"),
        ('{% channelbus_bind "chat.send" payload=payload %}', {"payload": "text"}, "must be a JSON object"),
        (
            '{% channelbus_bind "chat.send" payload=payload %}',
            {"payload": {"s": {1}}},
            "not JSON-serialisable",
        ),
    ],
)
def test_bind_refuses_what_the_client_could_not_send(source, context, error):
    with pytest.raises(TemplateSyntaxError, match=error):
        render(source, **context)
