"""JSON Schema (2020-12) of every payload of the contract, from pydantic, forms and serializers.

:class:`Schemas` turns the payload sources of a :class:`~channelbus.contract.catalog.Catalog` into
schemas whose named parts (pydantic models, forms, serializers) are gathered in one set of
definitions, referenced with a template of the caller's (``#/$defs/{model}`` here,
``#/components/schemas/{model}`` in AsyncAPI). :func:`json_schema_document` is the document
``manage.py channelbus_schema --format jsonschema`` writes.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from pydantic import TypeAdapter

from ..messages.adapters import Mode
from . import builtin
from .catalog import ANY, Catalog

__all__ = ["DIALECT", "Schemas", "describe", "json_schema_document", "payload_keys"]

DIALECT = "https://json-schema.org/draft/2020-12/schema"


class Schemas:
    """Payload sources in, JSON Schemas out: ``add()`` each, then ``build()`` once."""

    def __init__(self, ref_template: str) -> None:
        self.ref_template = ref_template
        self._sources: dict[Hashable, tuple[Any, Mode]] = {}

    def add(self, key: Hashable, source: Any, mode: Mode) -> None:
        """Describe ``source`` under ``key``: as accepted (``validation``) or as sent (``serialization``)."""
        self._sources[key] = (source, mode)

    def build(self) -> tuple[dict[Hashable, dict[str, Any]], dict[str, Any]]:
        """``(schema by key, definitions by name)``; a source nothing can describe is ``{}``, any value."""
        typed: list[tuple[Hashable, Mode, TypeAdapter[Any]]] = []
        schemas: dict[Hashable, dict[str, Any]] = {}
        adapters: list[tuple[Hashable, Any, Mode]] = []
        for key, (source, mode) in self._sources.items():
            if hasattr(source, "json_schema") and hasattr(source, "kind"):  # a form's or serializer's
                adapters.append((key, source, mode))
            elif (adapter := _type_adapter(source, mode)) is not None:
                typed.append((key, mode, adapter))
            else:
                schemas[key] = {}
        found, definitions = TypeAdapter.json_schemas(typed, ref_template=self.ref_template)
        defs: dict[str, Any] = dict(sorted(definitions.get("$defs", {}).items()))
        schemas.update({key: schema for (key, _), schema in found.items()})
        for key, adapter, mode in adapters:
            name = _unique(adapter.schema.__name__, defs, adapter.json_schema(mode))
            schemas[key] = {"$ref": self.ref_template.format(model=name)}
        return schemas, defs


def _type_adapter(source: Any, mode: Mode) -> TypeAdapter[Any] | None:
    """pydantic's adapter of ``source``, if it can make a JSON Schema of it (not of a handler annotated
    ``-> HttpResponse``, say)."""
    if source is ANY:
        return None
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(source)
        adapter.json_schema(mode=mode)
    except Exception:  # pydantic's errors for types it cannot describe have no common base
        return None
    return adapter


def _unique(name: str, defs: dict[str, Any], schema: dict[str, Any]) -> str:
    """Add ``schema`` to ``defs`` under ``name`` (``name_2``... if another schema has that name)."""
    candidate, n = name, 1
    while candidate in defs and defs[candidate] != schema:
        n += 1
        candidate = f"{name}_{n}"
    defs[candidate] = schema
    return candidate


def payload_keys(cat: Catalog) -> list[tuple[Hashable, str, str, Any, Mode]]:
    """``(key, definition name, what it is, source, mode)`` of every payload: ``in.<t>`` what a client
    sends, ``reply.<t>`` the reply to a request of type t, ``out.<t>`` what the server sends (errors
    too), ``state.r`` the progress of a deferred request."""
    keys: list[tuple[Hashable, str, str, Any, Mode]] = []
    for inc in cat.incoming:
        keys.append(
            (
                ("in", inc.name),
                f"in.{inc.name}",
                f"p of {inc.name}, sent by clients",
                inc.payload,
                "validation",
            )
        )
        reply = f"p of the reply to {inc.name} ({inc.reply_type}, state s)"
        keys.append((("reply", inc.name), f"reply.{inc.name}", reply, inc.reply, "serialization"))
    for name, summary, source, _ in cat.sent():
        keys.append(
            (
                ("out", name),
                f"out.{name}",
                f"p of {name}, sent by the server. {summary}",
                source,
                "serialization",
            )
        )
    progress = "p of a deferred request's r frames (self.progress())"
    keys.append((("state", "r"), "state.r", progress, builtin.Progress, "serialization"))
    return keys


def describe(cat: Catalog, ref_template: str) -> tuple[dict[Hashable, dict[str, Any]], dict[str, Any]]:
    """The schema of every payload of :func:`payload_keys` by its key, and the named definitions."""
    schemas = Schemas(ref_template)
    for key, _, _, source, mode in payload_keys(cat):
        schemas.add(key, source, mode)
    return schemas.build()


def json_schema_document(cat: Catalog, title: str) -> dict[str, Any]:
    """One JSON Schema whose ``$defs`` describe every payload (see :func:`payload_keys`), with the named
    models, forms and serializers beside them."""
    by_key, defs = describe(cat, "#/$defs/{model}")
    for key, name, what, _, _ in payload_keys(cat):
        _unique(name, defs, {"description": what, **by_key[key]})  # a model's name never has a dot: free
    return {
        "$schema": DIALECT,
        "title": f"{title}: payloads",
        "description": (
            "The payload p of every message type: $defs in.<type> is what a client sends, reply.<type> "
            "what the reply to that request carries, out.<type> what the server sends (errors too)."
        ),
        "$defs": defs,
    }
