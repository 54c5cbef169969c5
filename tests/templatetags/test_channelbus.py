"""The template tags of channelbus/templatetags/channelbus.py: ``{% channelbus_client %}`` (the browser
client's JSON configuration, with a signed topic token, and its script tag) and ``{% channelbus_bind %}``
(the escaped ``data-bus-*`` attributes). A topic token is bound to the page's ``request.user``."""

import datetime
import json
import re
from decimal import Decimal
from html import unescape
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Template, TemplateSyntaxError
from django.test import override_settings

from channelbus.protocol import SubscribeRefused
from channelbus.templatetags.channelbus import CONFIG_ELEMENT_ID, SCRIPT_PATH, client_config
from channelbus.topics.tokens import topics_from_token


def render(source, **context):
    return Template("{% load channelbus %}" + source).render(Context(context))


def page_of(user):
    """The ``request`` a view renders with (Django's request context processor puts it in the context)."""
    return SimpleNamespace(user=user)


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
def test_client_tag_with_topics_signs_them_into_the_token(topics, user):
    html = render(
        f"{{% channelbus_client topics={topics} %}}",
        names=["broadcast", " test.room:lobby ", ""],
        request=page_of(user),
    )
    config = config_in(html)
    assert config["url"] == "/ws/"
    assert topics_from_token(config["token"], user) == ["broadcast", "test.room:lobby"]


def test_users_in_the_topic_list_name_their_own_topic(user):
    config = config_in(render("{% channelbus_client topics=names %}", names=[user], request=page_of(user)))
    assert topics_from_token(config["token"], user) == [f"user:{user.pk}"]


def test_the_token_is_bound_to_the_request_user(user, django_user_model):
    bob = django_user_model.objects.create_user(username="bob", password="x")
    token = config_in(render('{% channelbus_client topics="test.room:a" %}', request=page_of(user)))["token"]
    assert topics_from_token(token, user) == ["test.room:a"]
    with pytest.raises(SubscribeRefused, match="made for another user"):
        topics_from_token(token, bob)
    # user= names the user explicitly (and wins over the request's).
    source = '{% channelbus_client topics="test.room:a" user=bob %}'
    token = config_in(render(source, bob=bob, request=page_of(user)))["token"]
    assert topics_from_token(token, bob) == ["test.room:a"]
    # A signed-out visitor's page gets a token anyone may use.
    token = config_in(
        render('{% channelbus_client topics="test.room:a" %}', request=page_of(AnonymousUser()))
    )["token"]
    assert topics_from_token(token, bob) == ["test.room:a"]


def test_public_true_makes_a_token_for_anyone(user):
    token = config_in(render('{% channelbus_client topics="test.room:a" public=True %}'))["token"]
    assert topics_from_token(token, None) == ["test.room:a"]
    assert topics_from_token(token, user) == ["test.room:a"]
    assert client_config("test.room:a", public=True)["token"] is not None


def test_topics_without_a_user_and_not_public_are_refused():
    with pytest.raises(TemplateSyntaxError) as exc:
        render('{% channelbus_client topics="test.room:a" %}')
    assert "the context has no request.user" in str(exc.value)
    with pytest.raises(ValueError, match="say whom the token is for"):
        client_config("test.room:a")
    # Without topics nothing is signed, so nothing needs a user.
    assert config_in(render("{% channelbus_client %}"))["token"] is None


def test_an_empty_topic_list_gives_no_token():
    assert client_config("") == {"url": "/ws/", "token": None}
    assert client_config([" ", ""]) == {"url": "/ws/", "token": None}


def test_a_topic_of_an_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        render('{% channelbus_client topics="no.such.kind:1" public=True %}')


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
