"""Template tags for the browser client: ``{% load channelbus %}``.

``{% channelbus_client %}``
    The client's configuration as ``<script type="application/json" id="channelbus-config">``
    (``{"url": "/ws/", "token": null}``) and the ``<script>`` tag of ``channelbus/channelbus.js``.
    ``topics=`` (a list, or a comma-separated string of topic names; Topic objects, users and
    model instances work in a list too) puts a signed topic token into ``token``: the connection
    joins those topics without a permission check, so name only what this page's user may see.
    The token is bound to ``request.user`` of the context (or ``user=``): on another user's
    connection it joins nothing. ``public=True`` makes a token anyone may use::

        {% channelbus_client topics="chat.room:lobby,broadcast" %}
        {% channelbus_client topics=page_topics %}
        {% channelbus_client topics="news" public=True %}

``{% channelbus_bind "chat.send" event="submit" payload=... reset=True %}``
    The attributes ``data-bus-type="chat.send" data-bus-event="submit"`` (escaped) for a form
    or element that sends that message when the event fires. ``payload`` (a dict, or anything
    JSON-serialisable to an object) becomes ``data-bus-payload``: constant values sent with the
    fields. ``reset=True`` writes ``data-bus-reset`` (the form is reset after a success)::

        <form {% channelbus_bind "chat.send" payload=room_payload reset=True %}>...</form>
        <button {% channelbus_bind "board.delete" payload=card.pk_payload %}>Delete</button>
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django import template
from django.core.serializers.json import DjangoJSONEncoder
from django.templatetags.static import static
from django.utils.html import format_html, json_script
from django.utils.safestring import SafeString

from ..conf import settings
from ..protocol.limits import MAX_TYPE_LENGTH, TYPE_PATTERN
from ..topics.tokens import topic_token

__all__ = ["CONFIG_ELEMENT_ID", "SCRIPT_PATH", "channelbus_bind", "channelbus_client", "client_config"]

register = template.Library()

#: The static path of the browser client.
SCRIPT_PATH = "channelbus/channelbus.js"
#: The ``id`` of the JSON configuration element the client reads.
CONFIG_ELEMENT_ID = "channelbus-config"


def _topic_names(topics: Any) -> list[Any]:
    if topics is None:
        return []
    if isinstance(topics, str):
        items: list[Any] = topics.split(",")
    elif isinstance(topics, Iterable):
        items = list(topics)
    else:
        items = [topics]
    names = [item.strip() if isinstance(item, str) else item for item in items]
    return [name for name in names if name != ""]


def client_config(topics: Any = None, *, user: Any = None, public: bool = False) -> dict[str, Any]:
    """The configuration the browser client reads: ``url`` (the WebSocket path) and ``token``
    (a signed topic token for ``topics``, bound to ``user`` unless ``public``, or None when there
    are no topics; see :func:`~channelbus.topics.topic_token`)."""
    names = _topic_names(topics)
    return {
        "url": "/" + str(settings.URL).lstrip("/"),
        "token": topic_token(names, user=user, public=public) if names else None,
    }


@register.simple_tag(takes_context=True)
def channelbus_client(
    context: template.Context, topics: Any = None, user: Any = None, public: bool = False
) -> SafeString:
    """``{% channelbus_client topics=... %}``: the JSON configuration and the client's ``<script>`` tag.

    A topic token is bound to ``user``, by default ``request.user`` of the context; with topics,
    no user and not ``public=True`` it raises ``TemplateSyntaxError``.
    """
    if user is None:
        user = getattr(context.get("request"), "user", None)
    names = _topic_names(topics)
    if names and user is None and not public:
        raise template.TemplateSyntaxError(
            "channelbus_client: the topic token is bound to the page's user, and the context has no "
            "request.user (add the 'django.template.context_processors.request' context processor, "
            "or pass user=...), or say public=True if anyone may follow these topics."
        )
    return format_html(
        '{}\n<script src="{}" defer></script>',
        json_script(client_config(names, user=user, public=public), CONFIG_ELEMENT_ID),
        static(SCRIPT_PATH),
    )


@register.simple_tag
def channelbus_bind(
    type_name: str, event: str | None = None, payload: Any = None, reset: bool = False
) -> SafeString:
    """``{% channelbus_bind "chat.send" event="submit" payload=... reset=True %}``: the ``data-bus-*``
    attributes (escaped) the client binds; without ``event`` the client picks its default (submit for
    a form, change for a field, click otherwise). ``payload`` must encode to a JSON object."""
    # Not protocol.valid_type_name(): it wants an exact str, and template literals are SafeStrings.
    if not (
        isinstance(type_name, str) and len(type_name) <= MAX_TYPE_LENGTH and TYPE_PATTERN.match(type_name)
    ):
        raise template.TemplateSyntaxError(
            f"channelbus_bind: {type_name!r} is not a message type such as 'chat.send'."
        )
    parts = [format_html('data-bus-type="{}"', type_name)]
    if event is not None:
        parts.append(format_html('data-bus-event="{}"', event))
    if payload is not None:
        try:
            encoded = json.dumps(payload, cls=DjangoJSONEncoder)
        except TypeError as exc:
            raise template.TemplateSyntaxError(
                f"channelbus_bind: payload is not JSON-serialisable ({exc})."
            ) from exc
        if not encoded.startswith("{"):
            raise template.TemplateSyntaxError(
                f"channelbus_bind: payload must be a JSON object (a dict), not {encoded[:40]}."
            )
        parts.append(format_html('data-bus-payload="{}"', encoded))
    if reset:
        parts.append(SafeString("data-bus-reset"))
    return SafeString(" ".join(parts))
