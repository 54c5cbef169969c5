"""Built-in dom.* outgoing messages, their helpers, and the template tags of the browser client."""

import inspect
import json
import re
from pathlib import Path

import pytest
from django.template import Context, Template
from django.test import override_settings
from pydantic import ValidationError

from channelbus import dom
from channelbus.messages import outgoing
from channelbus.publishing import apublish
from channelbus.topics import topics_from_token

pytestmark = pytest.mark.django_db(transaction=True)

ALL_TYPES = {
    "dom.text": dom.DomText,
    "dom.html": dom.DomHtml,
    "dom.append_html": dom.DomAppendHtml,
    "dom.prepend_html": dom.DomPrependHtml,
    "dom.append": dom.DomAppend,
    "dom.prepend": dom.DomPrepend,
    "dom.remove": dom.DomRemove,
    "dom.attr": dom.DomAttr,
    "dom.add_class": dom.DomAddClass,
    "dom.remove_class": dom.DomRemoveClass,
    "dom.value": dom.DomValue,
    "dom.focus": dom.DomFocus,
    "dom.scroll": dom.DomScroll,
    "dom.notice": dom.DomNotice,
}


def test_every_dom_type_is_registered_outgoing():
    for name, cls in ALL_TYPES.items():
        assert cls.name == name
        assert outgoing.get(name) is cls
    assert {n for n in outgoing if n.startswith("dom.")} == set(ALL_TYPES)


def test_public_names_have_docstrings():
    for name in dom.__all__:
        obj = getattr(dom, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert (obj.__doc__ or "").strip(), name
    assert "TRUSTED" in dom.DomHtml.__doc__


@pytest.mark.parametrize(
    ("message", "frame"),
    [
        (dom.text("#count", 5), {"t": "dom.text", "p": {"selector": "#count", "text": "5"}}),
        (dom.text("#n", 1.5), {"t": "dom.text", "p": {"selector": "#n", "text": "1.5"}}),
        (dom.html("#box", "<b>hi</b>"), {"t": "dom.html", "p": {"selector": "#box", "html": "<b>hi</b>"}}),
        (
            dom.append_html("ul", "<li>x</li>"),
            {"t": "dom.append_html", "p": {"selector": "ul", "html": "<li>x</li>"}},
        ),
        (
            dom.prepend_html("ul", "<li>y</li>"),
            {"t": "dom.prepend_html", "p": {"selector": "ul", "html": "<li>y</li>"}},
        ),
        (
            dom.append("#log", "<not html>"),
            {"t": "dom.append", "p": {"selector": "#log", "text": "<not html>"}},
        ),
        (dom.prepend("#log", 0), {"t": "dom.prepend", "p": {"selector": "#log", "text": "0"}}),
        (dom.remove(".row"), {"t": "dom.remove", "p": {"selector": ".row"}}),
        (
            dom.attr("a.x", "href", "/next"),
            {"t": "dom.attr", "p": {"selector": "a.x", "name": "href", "value": "/next"}},
        ),
        (
            dom.attr("#b", "disabled", None),
            {"t": "dom.attr", "p": {"selector": "#b", "name": "disabled", "value": None}},
        ),
        (
            dom.attr("#b", "data-count", 3),
            {"t": "dom.attr", "p": {"selector": "#b", "name": "data-count", "value": "3"}},
        ),
        (
            dom.add_class("#r", "done"),
            {"t": "dom.add_class", "p": {"selector": "#r", "class_name": "done"}},
        ),
        (
            dom.remove_class("#r", "done"),
            {"t": "dom.remove_class", "p": {"selector": "#r", "class_name": "done"}},
        ),
        (
            dom.value("input[name=q]", 42),
            {"t": "dom.value", "p": {"selector": "input[name=q]", "value": "42"}},
        ),
        (dom.focus("#q"), {"t": "dom.focus", "p": {"selector": "#q"}}),
        (dom.scroll("#end"), {"t": "dom.scroll", "p": {"selector": "#end"}}),
        (
            dom.notice("Saved", level="success"),
            {"t": "dom.notice", "p": {"text": "Saved", "level": "success"}},
        ),
        (dom.notice("Hello"), {"t": "dom.notice", "p": {"text": "Hello", "level": "info"}}),
    ],
)
def test_helpers_build_validated_messages_with_exact_frames(message, frame):
    assert isinstance(message, ALL_TYPES[frame["t"]])
    assert message.encode() == json.dumps(frame, separators=(",", ":"))


def test_the_classes_validate_like_the_helpers():
    assert dom.DomText(selector="#a", text=7).payload() == {"selector": "#a", "text": "7"}
    with pytest.raises(ValidationError):
        dom.DomText(selector="#a", text="x", extra="no")
    with pytest.raises(ValidationError):
        dom.DomText(selector="#a")  # text is required


@pytest.mark.parametrize("selector", ["", "   ", "x" * 501])
def test_bad_selectors_are_refused(selector):
    with pytest.raises(ValidationError):
        dom.text(selector, "x")
    with pytest.raises(ValidationError):
        dom.remove(selector)


def test_a_selector_of_500_characters_is_accepted():
    assert dom.focus("x" * 500).payload() == {"selector": "x" * 500}


@pytest.mark.parametrize(
    "name",
    [
        "onclick",
        "ONLOAD",
        "onMouseOver",
        "on",
        "srcdoc",
        "SrcDoc",
        "style",
        "data",
        "",
        "1abc",
        "a b",
        "a>b",
        'x"',
        "x\n",
    ],
)
def test_unsafe_or_malformed_attribute_names_are_refused(name):
    with pytest.raises(ValidationError):
        dom.attr("#x", name, "v")
    with pytest.raises(ValidationError):
        dom.attr("#x", name, None)


@pytest.mark.parametrize("name", ["href", "src", "action", "formaction", "HREF", "xlink:href"])
@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "JavaScript:alert(1)", "  javascript:x", "\tJAVASCRIPT:x", "java\nscript:x"],
)
def test_javascript_urls_are_refused(name, url):
    with pytest.raises(ValidationError):
        dom.attr("a", name, url)


#: The cases the browser client's tests check too (tests/js/client.test.mjs): same answers on both sides.
ATTR_CASES = json.loads((Path(__file__).parent / "dom_attr_cases.json").read_text())


@pytest.mark.parametrize(("name", "value", "reason"), ATTR_CASES["refused"])
def test_dom_attr_refuses_what_the_client_refuses(name, value, reason):
    assert reason in dom.unsafe_attribute(name, value)
    with pytest.raises(ValidationError) as exc:
        dom.attr("#x", name, value)
    [error] = exc.value.errors()
    assert reason.lower() in error["msg"].lower()


@pytest.mark.parametrize(("name", "value"), ATTR_CASES["allowed"])
def test_dom_attr_allows_what_the_client_allows(name, value):
    assert dom.unsafe_attribute(name, value) is None
    assert dom.attr("#x", name, value).payload() == {"selector": "#x", "name": name, "value": value}


def test_a_refused_url_says_which_schemes_are_allowed():
    with pytest.raises(ValidationError) as exc:
        dom.attr("a.next", "href", "data:text/html,<script>alert(1)</script>")
    [error] = exc.value.errors()
    assert error["msg"] == (
        "Value error, A data: URL cannot be set as href (allowed: http:, https:, mailto: and relative URLs)."
    )
    assert dom.url_scheme(" \tJava\nScript:x()") == "javascript"
    assert dom.url_scheme("/a:b") is None
    assert dom.url_scheme("page.html#x:y") is None


@pytest.mark.parametrize(("element", "name", "value"), ATTR_CASES["refused_elements"])
@pytest.mark.parametrize("selector", ["{}", "head > {}", "{}[src]", "div {}.x", "#a, {}", "svg|{}", "SVG {}"])
def test_url_attributes_of_a_selector_naming_base_script_object_or_embed_are_refused(
    element, name, value, selector
):
    selector = selector.format(element.upper() if selector.startswith("SVG") else element)
    with pytest.raises(ValidationError, match=f"URL attributes of {element} elements cannot be set"):
        dom.attr(selector, name, value)
    # Other attributes of those elements, and removing, are fine.
    assert dom.attr(selector, "title", value).payload()["value"] == value
    assert dom.attr(selector, name, None).payload()["value"] is None


@pytest.mark.parametrize(
    "selector", ["#base", ".script", "base-link", "[data-kind=base]", "my-embed", "a.object"]
)
def test_selectors_that_merely_contain_those_names_are_not_refused(selector):
    assert dom.attr(selector, "href", "/next").payload()["selector"] == selector


def test_safe_attributes_and_urls_are_accepted():
    assert dom.attr("a", "href", "https://example.com/javascript:").payload()["value"] == (
        "https://example.com/javascript:"
    )
    assert dom.attr("a", "title", "javascript:is text here").payload()["value"] == "javascript:is text here"
    assert dom.attr("svg", "xlink:title", "x").payload()["name"] == "xlink:title"
    assert dom.attr("a", "aria-label", "<b>").payload()["value"] == "<b>"
    assert dom.attr("a", "href", None).payload()["value"] is None  # removing is always fine


@pytest.mark.parametrize("class_name", ["", "two words", "tab\there"])
def test_bad_class_names_are_refused(class_name):
    with pytest.raises(ValidationError):
        dom.add_class("#x", class_name)


@pytest.mark.parametrize("level", ["debug", "INFO", "", None])
def test_bad_notice_levels_are_refused(level):
    with pytest.raises(ValidationError):
        dom.notice("x", level=level)


def test_booleans_are_not_text():
    with pytest.raises(ValidationError):
        dom.text("#x", True)


async def test_a_published_dom_message_reaches_a_subscribed_client(bus_client, user):
    client = await bus_client(user=user)
    epoch = (await client.request("topic.subscribe", {"topic": "test.room:lobby"}))["epoch"]
    await apublish(dom.text("#count", 5), to="test.room:lobby")
    assert await client.receive() == {
        "t": "dom.text",
        "p": {"selector": "#count", "text": "5"},
        "c": "test.room:lobby",
        "n": 1,
        "e": epoch,
    }
    await apublish(dom.notice("Saved", level="success"), to=user)
    notice = await client.receive()
    assert len(notice.pop("e")) == 8  # the first frame of user:<pk>'s numbering names its epoch
    assert notice == {
        "t": "dom.notice",
        "p": {"text": "Saved", "level": "success"},
        "c": f"user:{user.pk}",
        "n": 1,
    }


# -- template tags --------------------------------------------------------------------------------------

_CONFIG = re.compile(r'<script id="channelbus-config" type="application/json">(.*?)</script>')


def _render(source, **context):
    return Template("{% load channelbus %}" + source).render(Context(context))


def _config(html):
    match = _CONFIG.search(html)
    assert match, html
    return json.loads(match.group(1))


@override_settings(STATIC_URL="/static/")
def test_client_tag_without_topics():
    html = _render("{% channelbus_client %}")
    assert '<script src="/static/channelbus/channelbus.js" defer></script>' in html
    assert _config(html) == {"url": "/ws/", "token": None}
    assert html.index("channelbus-config") < html.index("channelbus.js")


@override_settings(STATIC_URL="/static/", CHANNELBUS={"URL": "bus/socket/"})
def test_client_tag_signs_comma_separated_topics():
    config = _config(_render('{% channelbus_client topics="test.room:lobby, broadcast," public=True %}'))
    assert config["url"] == "/bus/socket/"
    assert topics_from_token(config["token"], None) == ["test.room:lobby", "broadcast"]


@override_settings(STATIC_URL="/static/")
def test_client_tag_signs_a_list_of_topics_and_users(user):
    source = "{% channelbus_client topics=page_topics user=user %}"
    config = _config(_render(source, page_topics=["test.room:a", user], user=user))
    assert topics_from_token(config["token"], user) == ["test.room:a", f"user:{user.pk}"]
    assert _config(_render("{% channelbus_client topics=none %}", none=[]))["token"] is None


@override_settings(STATIC_URL="/static/")
def test_client_tag_config_cannot_break_out_of_its_script():
    with override_settings(CHANNELBUS={"URL": "</script><script>alert(1)//"}):
        html = _render("{% channelbus_client %}")
    assert "<script>alert" not in html
    assert _config(html)["url"] == "/</script><script>alert(1)//"


def test_bind_tag_renders_escaped_attributes():
    assert _render('<form {% channelbus_bind "chat.send" event="submit" %}>') == (
        '<form data-bus-type="chat.send" data-bus-event="submit">'
    )
    assert _render('<a {% channelbus_bind "chat.ping" %}>') == '<a data-bus-type="chat.ping">'
    assert _render('{% channelbus_bind "chat.send" event=ev %}', ev='x" onclick="evil') == (
        'data-bus-type="chat.send" data-bus-event="x&quot; onclick=&quot;evil"'
    )


def test_bind_tag_writes_a_json_payload_and_reset():
    html = _render(
        '<button {% channelbus_bind "board.delete" payload=data reset=True %}>',
        data={"pk": 3, "note": '"><script>'},
    )
    assert html == (
        '<button data-bus-type="board.delete" '
        'data-bus-payload="{&quot;pk&quot;: 3, &quot;note&quot;: &quot;\\&quot;&gt;&lt;script&gt;&quot;}" '
        "data-bus-reset>"
    )
    # What the browser reads back from the attribute is the JSON object.
    import html as html_module
    import json
    import re

    attribute = re.search(r'data-bus-payload="([^"]*)"', html).group(1)
    assert json.loads(html_module.unescape(attribute)) == {"pk": 3, "note": '"><script>'}


def test_bind_tag_refuses_a_payload_that_is_not_an_object():
    from django.template import TemplateSyntaxError

    with pytest.raises(TemplateSyntaxError, match="JSON object"):
        _render("{% channelbus_bind 'a.b' payload=data %}", data=[1, 2])
    with pytest.raises(TemplateSyntaxError, match="JSON-serialisable"):
        _render("{% channelbus_bind 'a.b' payload=data %}", data={"x": object()})


def test_bind_tag_refuses_a_malformed_type():
    from django.template import TemplateSyntaxError

    with pytest.raises(TemplateSyntaxError):
        _render("{% channelbus_bind name %}", name='"><script>')
