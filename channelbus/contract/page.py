"""What the schema page shows, for people: every message with its payload and reply as TypeScript types.

The page is rendered on the server from this data (``channelbus/asyncapi.html``), with no script and
nothing loaded from elsewhere, so it works offline. Types are written as in the ``.d.ts``
(:func:`~channelbus.contract.typescript.ts_type`); the named ones are listed at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .asyncapi import traits
from .catalog import NO_PAYLOAD, Catalog, summary_of
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


def _type(source: Any, schema: dict[str, Any]) -> str:
    return "none (no p)" if source is NO_PAYLOAD else ts_type(schema)


def page(cat: Catalog, title: str, version: str) -> Page:
    """The page of ``cat``."""
    payloads, defs = describe(cat, "#/$defs/{model}")
    incoming = []
    for inc in cat.incoming:
        states = "States q, then r (with progress), then the reply. " if inc.cls.deferred else ""
        may_fail = f"Errors: {', '.join(inc.errors)}, and any error.* the handler raises."
        incoming.append(
            Entry(
                inc.name,
                summary_of(inc.cls),
                _type(inc.payload, payloads["in", inc.name]),
                inc.reply_type,
                _type(inc.reply, payloads["reply", inc.name]),
                f"{traits(inc.cls)} {states}{may_fail}",
            )
        )
    outgoing = [
        Entry(
            out.name,
            summary_of(out.cls),
            _type(out.payload, payloads["out", out.name]),
            notes=_kinds(out.kinds),
        )
        for out in cat.outgoing
    ]
    errors = [
        Entry(name, summary, _type(source, payloads["out", name]))
        for name, summary, source, failed in cat.sent()
        if failed or name not in {out.name for out in cat.outgoing}
    ]
    topics = [
        Entry(
            kind.name if kind.key is None else f"{kind.name}:<key>",
            summary_of(kind.cls),
            notes=" ".join(
                filter(
                    None,
                    [
                        f"Key: {kind.key}." if kind.key else "No key.",
                        "Every connection joins it." if kind.cls.auto_join else "",
                        f"Published to it: {', '.join(kind.messages)}." if kind.messages else "",
                    ],
                )
            ),
        )
        for kind in cat.topics
    ]
    types = [
        Entry(identifier(name), schema.get("description", ""), ts_type(schema))
        for name, schema in defs.items()
    ]
    return Page(title, version, cat.url, incoming, outgoing, errors, topics, types)


def _kinds(kinds: tuple[str, ...]) -> str:
    return f"Published to topics of kind {', '.join(kinds)}." if kinds else ""
