"""A DRF serializer as a message's schema: ``schema = ContactSerializer`` (``pip install 'channelbus[drf]'``).

The payload ``p`` is the serializer's input (``ContactSerializer(data=p)``); ``self.data`` is its
``validated_data``. Its errors come back in ``error.validation`` as pydantic's do, one
``{loc, msg, type}`` per message, with the path through nested serializers and lists
(``["address", "city"]``, ``["items", 0, "name"]``); the serializer's own errors
(``non_field_errors``) have ``loc`` ``[]``; ``type`` is the error's ``code``. A payload that is no
JSON object is refused as with a form (``loc`` ``[]``, ``type`` ``model_type``), and a serializer
with a file field cannot be a schema (system check ``channelbus.E007``).

Only imported once DRF is (:func:`~channelbus.messages.schemas.adapter_for` sees to it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rest_framework import fields as drf
from rest_framework import relations, serializers
from rest_framework.settings import api_settings

from .adapters import (
    Builder,
    ClassAdapter,
    InvalidPayload,
    Mode,
    bounded,
    build_with,
    described,
    formatted,
    formatted_fields,
    nullable,
    object_schema,
    pk_schema,
    ranged,
)

__all__ = ["SerializerSchema", "error_list", "field_schema"]


class SerializerSchema(ClassAdapter):
    """The adapter of a DRF serializer class (see the module's docstring)."""

    kind = "serializer"
    schema: type[serializers.BaseSerializer]

    def file_fields(self) -> Iterator[tuple[str, Any]]:
        """The file and image fields, nested serializers' too."""
        return ((path, field) for path, field in _walk(self.schema()) if isinstance(field, drf.FileField))

    def validated(self, payload: dict[str, Any]) -> Any:
        """``validated_data`` of the serializer given ``payload``; raises :class:`InvalidPayload`."""
        serializer = self.schema(data=payload)
        if serializer.is_valid():
            return serializer.validated_data
        raise InvalidPayload(list(error_list(serializer.errors, [])))

    def dump(self, data: Any) -> Any:
        """Validated data as the serializer represents it (``to_representation``)."""
        return self.schema(data).data

    def json_schema(self, mode: Mode) -> dict[str, Any]:
        """The serializer as an object schema: what it takes (``validation``) or gives (``serialization``)."""
        return _serializer_schema(self.schema(), mode)


def error_list(errors: Any, loc: list[Any]) -> Iterator[dict[str, Any]]:
    """DRF's nested errors as ``{loc, msg, type}``: dicts by field (``non_field_errors`` at ``loc``),
    lists of a nested ``many=True`` serializer by index, messages (``ErrorDetail``) as they are."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            yield from error_list(value, loc if key == api_settings.NON_FIELD_ERRORS_KEY else [*loc, key])
    elif isinstance(errors, list):
        for index, item in enumerate(errors):
            if isinstance(item, dict | list):
                yield from error_list(item, [*loc, index])
            else:
                yield {"loc": loc, "msg": str(item), "type": getattr(item, "code", None) or "invalid"}
    else:
        yield {"loc": loc, "msg": str(errors), "type": getattr(errors, "code", None) or "invalid"}


def _walk(serializer: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every field of a serializer, nested ones included, with its dotted path."""
    for name, field in serializer.fields.items():
        path = f"{prefix}{name}"
        yield path, field
        inner = field.child if isinstance(field, serializers.ListSerializer) else field
        if isinstance(inner, serializers.Serializer):
            yield from _walk(inner, f"{path}.")


def _serializer_schema(serializer: Any, mode: Mode) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, field in serializer.fields.items():
        skipped = field.read_only if mode == "validation" else field.write_only
        if skipped or isinstance(field, drf.HiddenField):
            continue
        properties[name] = field_schema(field, mode)
        if field.required or mode == "serialization":  # a representation has every field
            required.append(name)
    return object_schema(type(serializer), properties, required)


def field_schema(field: Any, mode: Mode) -> dict[str, Any]:
    """The JSON Schema of one serializer field's value (``{}``, any value, for a field it does not know)."""
    schema = _value_schema(field, mode)
    if field.allow_null:
        schema = nullable(schema)
    return described(schema, field.label, field.help_text)


def _value_schema(field: Any, mode: Mode) -> dict[str, Any]:
    if isinstance(field, serializers.ListSerializer):
        return {"type": "array", "items": _serializer_schema(field.child, mode)}
    if isinstance(field, serializers.Serializer):
        return _serializer_schema(field, mode)
    if isinstance(field, drf.ListField):
        return bounded(
            {"type": "array", "items": field_schema(field.child, mode)},
            minItems=field.min_length,
            maxItems=field.max_length,
        )
    if isinstance(field, drf.DictField):
        return {"type": "object", "additionalProperties": field_schema(field.child, mode)}
    if isinstance(field, relations.ManyRelatedField):
        return {"type": "array", "items": _value_schema(field.child_relation, mode)}
    return build_with(_BUILDERS, field)


def _string(field: Any) -> dict[str, Any]:
    # allow_blank=False (the default) refuses "": at least one character.
    shortest = field.min_length if field.min_length is not None else (None if field.allow_blank else 1)
    return bounded({"type": "string"}, minLength=shortest, maxLength=field.max_length)


def _primary_key(field: Any) -> dict[str, Any]:
    queryset = field.queryset
    return {} if queryset is None else pk_schema(queryset.model)  # None: read-only, whatever the pk is


def _choices(field: Any) -> dict[str, Any]:
    keys = [k if isinstance(k, str | int | float | bool) else str(k) for k in field.choices]
    return {"enum": keys}


#: How each kind of field's value is described, first match wins (subclasses before their bases).
_BUILDERS: list[tuple[Any, Builder]] = [
    ((drf.JSONField, drf.ReadOnlyField, drf.SerializerMethodField), lambda field: {}),
    (drf.MultipleChoiceField, lambda field: {"type": "array", "items": _choices(field)}),
    (drf.ChoiceField, _choices),
    (drf.BooleanField, lambda field: {"type": "boolean"}),
    (drf.DecimalField, ranged("number", "string")),  # DRF takes "1.10" and 1.1
    (drf.FloatField, ranged("number")),
    (drf.IntegerField, ranged("integer")),
    *formatted_fields(drf),
    (drf.CharField, _string),
    (relations.PrimaryKeyRelatedField, _primary_key),
    ((relations.SlugRelatedField, relations.StringRelatedField), lambda field: {"type": "string"}),
    (relations.HyperlinkedRelatedField, formatted("uri")),
]
