"""The AsyncAPI 3.0 document of the project: the socket, every message both ways, the topic kinds.

It describes the server application. The socket is one channel (``bus``, at the ``URL`` setting), and
every message is a whole frame, the envelope ``{t, i, p, s, c, n, e}`` of ``docs/protocol.md`` with
``t`` fixed and ``p`` the type's payload:

- each incoming type is a ``receive`` operation whose ``reply`` lists the frames that may answer it
  (correlated by ``i``): its ``s`` frame, the ``q`` and ``r`` states of a deferred one, its errors;
- each outgoing type, each built-in error and ``s.closing`` is a ``send`` operation;
- each topic kind is a channel of its own (``chat.room:{key}``), listing the types published to it
  where the project says so (``Topic.messages``, or the model binding's type).

The official parser (``@asyncapi/parser``) validates it in the tests (``tests/js/contract.test.mjs``).
"""

from __future__ import annotations

from typing import Any

from ..protocol import states
from ..protocol.limits import MAX_TRACE_ID_LENGTH
from .catalog import NO_PAYLOAD, Catalog, Incoming, TopicKind, summary_of
from .jsonschema import describe

__all__ = ["ASYNCAPI_VERSION", "asyncapi_document", "traits"]

ASYNCAPI_VERSION = "3.0.0"

_DESCRIPTION = """\
Messages of one WebSocket (subprotocol `channelbus.v1`): every frame is a JSON object, its envelope \
`{t, i, p, s, c, n, e}`. `t` is the message type, `i` the trace id a request is sent with and answered \
with, `p` the payload, `s` the state of a reply (`q` queued, `r` running, `s` success, `f` failed), `c` \
the topic a published frame came through, `n` its number in that topic and `e` the epoch of that \
numbering. A client sends only `t`, `i` and `p`. A request (a message with `i`) ends with one frame in \
state `s` or `f`; a deferred one is first `q`, then `r` (with progress). Topics are followed with \
`topic.subscribe`."""


def _frame(
    t: str, payload: dict[str, Any] | None, *, client: bool = False, s: str | None = None
) -> dict[str, Any]:
    """The JSON Schema of a whole frame of type ``t``: ``p`` as given (None: no ``p``), state ``s``."""
    fixed = {} if s is None else {"s": s}
    trace_id = {"type": "string", "minLength": 1, "maxLength": MAX_TRACE_ID_LENGTH}
    properties: dict[str, Any] = {"t": {"const": t}, "i": trace_id}
    if payload is not None:
        properties["p"] = payload
    properties.update({key: {"const": value} for key, value in fixed.items()})
    required = ["t", *fixed]
    if client:
        # The server refuses any other key (error.bad_request); a client reads new keys as it likes.
        return {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
    published = {"c": {"type": "string"}, "n": {"type": "integer", "minimum": 1}, "e": {"type": "string"}}
    if not fixed:  # a frame that answers no request may have been published to a topic
        properties.update(published)
    return {"type": "object", "properties": properties, "required": required}


def _message(name: str, title: str, summary: str, frame: dict[str, Any], correlated: bool) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": name,
        "title": title,
        "contentType": "application/json",
        "payload": frame,
    }
    if summary:
        message["summary"] = summary
    if correlated:
        message["correlationId"] = {"$ref": "#/components/correlationIds/i"}
    return message


def _ref(message_id: str) -> dict[str, str]:
    return {"$ref": f"#/channels/bus/messages/{message_id}"}


def _component(message_id: str) -> dict[str, str]:
    return {"$ref": f"#/components/messages/{message_id}"}


def _p(source: Any, schema: dict[str, Any]) -> dict[str, Any] | None:
    return None if source is NO_PAYLOAD else schema


def _incoming(inc: Incoming, payloads: dict[Any, dict[str, Any]], messages: dict[str, Any]) -> dict[str, Any]:
    """The incoming type's messages (request, reply, states) added to ``messages``; its operation."""
    cls = inc.cls
    request = _frame(inc.name, _p(inc.payload, payloads["in", inc.name]), client=True)
    messages[inc.name] = _message(inc.name, inc.name, summary_of(cls), request, True)
    reply_frame = _frame(inc.reply_type, _p(inc.reply, payloads["reply", inc.name]), s=states.SUCCESS)
    messages[f"{inc.name}-reply"] = _message(
        inc.reply_type, f"{inc.name}: success", f"The reply to {inc.name}.", reply_frame, True
    )
    replies = [_ref(f"{inc.name}-reply")]
    if cls.deferred:
        queued = _frame(inc.name, None, s=states.QUEUED)
        running = _frame(inc.name, payloads["state", "r"], s=states.RUNNING)
        messages[f"{inc.name}-queued"] = _message(
            inc.name, f"{inc.name}: queued", "The job is queued.", queued, True
        )
        messages[f"{inc.name}-running"] = _message(
            inc.name,
            f"{inc.name}: running",
            "A worker runs it; then once per progress report.",
            running,
            True,
        )
        replies += [_ref(f"{inc.name}-queued"), _ref(f"{inc.name}-running")]
    replies += [_ref(error) for error in inc.errors]
    return {
        "action": "receive",
        "channel": {"$ref": "#/channels/bus"},
        "title": inc.name,
        "summary": summary_of(cls) or f"{inc.name} from a client.",
        "description": traits(cls),
        "messages": [_ref(inc.name)],
        "reply": {"channel": {"$ref": "#/channels/bus"}, "messages": replies},
    }


def traits(cls: Any) -> str:
    """What a person must know of an incoming type beyond its payload."""
    said = []
    if cls.deferred:
        strict = ", one after another in arrival order" if cls.ordering == "strict" else ""
        said.append(f"Deferred: a task worker runs it{strict} (states q, then r).")
    if cls.allow_anonymous:
        said.append("Signed-out users may send it.")
    if cls.concurrent:
        said.append("Handled beside the connection's other messages, not in arrival order.")
    if not cls.idempotent:
        said.append("A request sent again with the same i runs again.")
    return (
        " ".join(said)
        or "Handled in arrival order; a request sent again with the same i gets the first answer."
    )


def _topic_channel(kind: TopicKind, known: set[str]) -> dict[str, Any]:
    cls = kind.cls
    said = [summary_of(cls) or f"Topics of kind {kind.name}."]
    if cls.auto_join:
        said.append("Every connection joins it by itself.")
    if cls.history_size:
        said.append(f"Keeps its last {cls.history_size} frames for clients that resubscribe with since.")
    channel: dict[str, Any] = {
        "address": kind.name if kind.key is None else f"{kind.name}:{{key}}",
        "title": kind.name,
        "description": " ".join(said),
        "messages": {
            name: {"$ref": f"#/components/messages/{name}"} for name in kind.messages if name in known
        },
    }
    if kind.key is not None:
        channel["parameters"] = {"key": {"description": f"The topic's key: {kind.key}."}}
    return channel


def asyncapi_document(cat: Catalog, title: str, version: str = "1") -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``cat`` (a dict, ready for ``json.dumps``)."""
    payloads, defs = describe(cat, "#/components/schemas/{model}")

    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for inc in cat.incoming:
        operations[f"receive-{inc.name}"] = _incoming(inc, payloads, messages)
    for name, summary, source, failed in cat.sent():
        frame = _frame(name, _p(source, payloads["out", name]), s=states.FAILED if failed else None)
        messages[name] = _message(name, name, summary, frame, failed)
        operations[f"send-{name}"] = {
            "action": "send",
            "channel": {"$ref": "#/channels/bus"},
            "title": name,
            "summary": summary or f"{name} from the server.",
            "messages": [_ref(name)],
        }
    channels: dict[str, Any] = {
        "bus": {
            "address": cat.url,
            "title": "The socket",
            "description": _DESCRIPTION,
            "messages": {
                message_id: {"$ref": f"#/components/messages/{message_id}"} for message_id in messages
            },
        }
    }
    for kind in cat.topics:
        channels[f"topic-{kind.name}"] = _topic_channel(kind, set(messages))
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {"title": title, "version": version, "description": _DESCRIPTION},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": defs,
            "messages": messages,
            "correlationIds": {
                "i": {
                    "description": "The trace id: every state, reply and error of a request carries its i.",
                    "location": "$message.payload#/i",
                }
            },
        },
    }
