"""What the schema page shows, for people: every message with its payload and reply as TypeScript types.

The page is rendered on the server from this data (``channelbus/asyncapi.html``), with no script and
nothing loaded from elsewhere, so it works offline. Types are written as in the ``.d.ts``
(:func:`~channelbus.contract.typescript.ts_type`); the named ones are listed at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .asyncapi import traits
from .catalog import NO_PAYLOAD, Catalog, TopicKind, summary_of
from .jsonschema import describe
from .typescript import identifier, ts_type

__all__ = ["Entry", "Page", "page"]


@dataclass(frozen=True)
class Entry:
    """One row of the page: a message type, an error, a topic kind or a named type."""

    name: str
    summary: str
    #: The payload's type, as TypeScript ("" for none).
    payload: str = ""
    #: For a request: the reply's type ``t`` and payload; ``notes``: how it is handled, its errors...
    reply_type: str = ""
    reply: str = ""
    notes: str = ""
    #: The named type the payload (or the reply) is, if it is one: the page links to it.
    payload_ref: str = ""
    reply_ref: str = ""


@dataclass(frozen=True)
class Page:
    """Everything the page shows, in its order."""

    title: str
    version: str
    url: str
    incoming: list[Entry]
    outgoing: list[Entry]
    errors: list[Entry]
    topics: list[Entry]
    types: list[Entry]


def page(cat: Catalog, title: str, version: str) -> Page:
    """The page of ``cat``."""
    payloads, defs = describe(cat, "#/$defs/{model}")
    named = {identifier(name) for name in defs}

    def typed(source: Any, schema: dict[str, Any]) -> tuple[str, str]:
        """``(the type as TypeScript, the named type it is or "")``."""
        text = "none (no p)" if source is NO_PAYLOAD else ts_type(schema)
        return text, text if text in named else ""

    incoming = []
    for inc in cat.incoming:
        payload, payload_ref = typed(inc.payload, payloads["in", inc.name])
        reply, reply_ref = typed(inc.reply, payloads["reply", inc.name])
        may_fail = f"Errors: {', '.join(inc.errors)}, and any error.* the handler raises."
        notes = f"{traits(inc.cls)} {may_fail}"
        incoming.append(
            Entry(
                inc.name,
                _text(summary_of(inc.cls)),
                payload,
                inc.reply_type,
                reply,
                notes,
                payload_ref,
                reply_ref,
            )
        )
    outgoing = []
    for out in cat.outgoing:
        payload, payload_ref = typed(out.payload, payloads["out", out.name])
        notes = f"Published to topics of kind {', '.join(out.kinds)}." if out.kinds else ""
        outgoing.append(
            Entry(out.name, _text(summary_of(out.cls)), payload, notes=notes, payload_ref=payload_ref)
        )
    errors = []
    for name, summary, source, failed in cat.sent():
        if failed or name not in {out.name for out in cat.outgoing}:
            payload, payload_ref = typed(source, payloads["out", name])
            errors.append(Entry(name, _text(summary), payload, payload_ref=payload_ref))
    topics = [
        Entry(_topic_name(kind), _text(summary_of(kind.cls)), notes=_topic_notes(kind)) for kind in cat.topics
    ]
    types = [
        Entry(identifier(name), _text(schema.get("description", "")), ts_type(schema))
        for name, schema in defs.items()
    ]
    return Page(title, version, cat.url, incoming, outgoing, errors, topics, types)


def _text(summary: str) -> str:
    """A docstring's summary for people: reStructuredText's double backquotes dropped."""
    return summary.replace("``", "")


def _topic_name(kind: TopicKind) -> str:
    return kind.name if kind.key is None else f"{kind.name}:<key>"


def _topic_notes(kind: TopicKind) -> str:
    said = [f"Key: {kind.key}." if kind.key else "No key."]
    if kind.cls.auto_join:
        said.append("Every connection joins it.")
    if kind.messages:
        said.append(f"Published to it: {', '.join(kind.messages)}.")
    return " ".join(said)
