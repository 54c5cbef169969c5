"""TypeScript declarations of the contract: a ``.d.ts`` that plugs into the browser client's types.

It declares every named payload (a pydantic model, a form, a serializer) as an exported type, and fills
the two global maps that ``channelbus.d.ts`` declares empty::

    declare global {
      interface ChannelbusIncoming { "demo.add": { payload: AddSchema; reply: AddResult }; ... }
      interface ChannelbusOutgoing { "chat.message": ChatMessageSchema; "error.validation": ...; ... }
    }

With both files in a TypeScript program, ``bus.request("demo.add", {a: 1, b: 2})`` checks the payload
and resolves to the reply's type; ``bus.send()`` checks the payload and ``bus.on("chat.message", ...)``
types the frame. Types the maps do not name stay untyped, as before.

:func:`ts_type` (a JSON Schema as a TypeScript type) also writes the types the schema page shows.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .catalog import NO_PAYLOAD, Catalog, summary_of
from .jsonschema import describe

__all__ = ["identifier", "ts_type", "typescript_declarations"]

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
_PRIMITIVES = {
    "string": "string",
    "integer": "number",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
}


def identifier(name: str) -> str:
    """A definition's name as a TypeScript identifier (pydantic's ``Model-Input`` is ``Model_Input``)."""
    name = re.sub(r"[^A-Za-z0-9_$]", "_", name)
    return name if _IDENTIFIER.match(name) else f"_{name}"


def _key(name: str) -> str:
    return name if _IDENTIFIER.match(name) else json.dumps(name)


def _comment(text: str, indent: str) -> str:
    text = " ".join(text.split()).replace("*/", "*\\/")
    return f"{indent}/** {text} */\n" if text else ""


def ts_type(schema: Any, indent: str = "") -> str:
    """The TypeScript type of a JSON Schema (``$ref`` names its definition; ``{}`` is ``unknown``)."""
    if schema is True or not isinstance(schema, dict) or not schema:
        return "unknown"
    if "$ref" in schema:
        return identifier(schema["$ref"].rpartition("/")[2])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"]) or "never"
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return " | ".join(_grouped(ts_type(s, indent)) for s in schema[union])
    if "allOf" in schema:
        return " & ".join(_grouped(ts_type(s, indent)) for s in schema["allOf"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(ts_type({**schema, "type": k}, indent) for k in kind)
    if kind == "array":
        if "prefixItems" in schema:
            return "[" + ", ".join(ts_type(s, indent) for s in schema["prefixItems"]) + "]"
        return f"{_grouped(ts_type(schema.get('items', {}), indent))}[]"
    if kind == "object" or "properties" in schema:
        return _object(schema, indent)
    return _PRIMITIVES.get(str(kind), "unknown")


def _grouped(text: str) -> str:
    return f"({text})" if " | " in text or " & " in text else text


def _object(schema: dict[str, Any], indent: str) -> str:
    properties: dict[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    if not properties:  # a map: its values' type, when the schema says it (none at all: no key allowed)
        values = (
            "never" if extra is False else ts_type(extra, indent) if isinstance(extra, dict) else "unknown"
        )
        return f"{{ [key: string]: {values} }}"
    inner = indent + "  "
    required = set(schema.get("required", ()))
    lines = ["{\n"]
    for name, prop in properties.items():
        lines.append(_comment(prop.get("description", "") if isinstance(prop, dict) else "", inner))
        optional = "" if name in required else "?"
        lines.append(f"{inner}{_key(name)}{optional}: {ts_type(prop, inner)};\n")
    if isinstance(extra, dict) or extra is True:  # unknown: an index signature's type must fit every property
        lines.append(f"{inner}[key: string]: unknown;\n")
    lines.append(f"{indent}}}")
    return "".join(lines)


def _declaration(name: str, schema: dict[str, Any]) -> str:
    doc = _comment(schema.get("description", ""), "")
    body = ts_type(schema)
    if body.startswith("{\n") and "anyOf" not in schema and "oneOf" not in schema:
        return f"{doc}export interface {identifier(name)} {body}\n"
    return f"{doc}export type {identifier(name)} = {body};\n"


def typescript_declarations(cat: Catalog, title: str) -> str:
    """The ``.d.ts`` text of ``cat`` (see the module's docstring)."""
    payloads, defs = describe(cat, "#/$defs/{model}")
    parts = [
        f"// The message types of {title}: written by `manage.py channelbus_schema --format typescript`.\n",
        "// Do not edit: generate it again when the messages change. Put it in the TypeScript program\n",
        "// beside channelbus.d.ts (tsconfig's files or include) to type bus.request(), send() and on().\n\n",
    ]
    parts += [_declaration(name, schema) + "\n" for name, schema in defs.items()]
    parts.append("declare global {\n  interface ChannelbusIncoming {\n")
    for inc in cat.incoming:
        # No payload: p absent (undefined) or null; request() and send() then need no payload argument.
        payload = ts_type(payloads["in", inc.name], "      ")
        payload = "null | undefined" if inc.payload is NO_PAYLOAD else payload
        reply = "null" if inc.reply is NO_PAYLOAD else ts_type(payloads["reply", inc.name], "      ")
        parts.append(_comment(summary_of(inc.cls), "    "))
        parts.append(f"    {json.dumps(inc.name)}: {{ payload: {payload}; reply: {reply} }};\n")
    parts.append("  }\n  interface ChannelbusOutgoing {\n")
    for name, summary, source, _ in cat.sent():
        payload = "null" if source is NO_PAYLOAD else ts_type(payloads["out", name], "    ")
        parts.append(_comment(summary, "    "))
        parts.append(f"    {json.dumps(name)}: {payload};\n")
    parts.append("  }\n}\n\nexport {};\n")
    return "".join(parts)
