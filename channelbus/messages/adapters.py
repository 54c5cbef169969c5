"""What every non-pydantic schema adapter shares: its protocol, its error, and the adapter that only refuses.

The adapters themselves are in :mod:`~channelbus.messages.forms` (Django forms) and
:mod:`~channelbus.messages.serializers` (DRF); :func:`~channelbus.messages.schemas.adapter_for`
picks one for a schema class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any, Literal, Protocol

from django.core.exceptions import SynchronousOnlyOperation
from django.db import models

__all__ = [
    "ClassAdapter",
    "InvalidPayload",
    "Mode",
    "SchemaAdapter",
    "UnusableSchema",
    "bounded",
    "build_with",
    "described",
    "formatted",
    "formatted_fields",
    "not_an_object",
    "nullable",
    "object_schema",
    "pk_schema",
    "ranged",
]

#: pydantic's names for the two sides of a schema: what is accepted, and what is sent.
Mode = Literal["validation", "serialization"]


class InvalidPayload(ValueError):
    """A payload that a form or a serializer refused; ``errors`` in the wire form ``{loc, msg, type}``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc'])) or 'p'}: {e['msg']}" for e in errors))


def not_an_object(schema: type[Any]) -> InvalidPayload:
    """The error for a payload that is no JSON object (a list, a number, null): pydantic's ``model_type``."""
    msg = f"Input should be an object with the fields of {schema.__name__}"
    return InvalidPayload([{"loc": [], "msg": msg, "type": "model_type"}])


class SchemaAdapter(Protocol):
    """A schema class that is not a pydantic model, as :class:`~channelbus.messages.Message` uses it."""

    #: ``"form"``, ``"serializer"`` or ``"unusable"``.
    kind: str
    #: The schema class.
    schema: Any

    @property
    def problem(self) -> str | None:
        """Why messages cannot use this schema (a file field, not a schema at all), or None."""

    def validate(self, payload: Any) -> Any:
        """The validated data of ``payload``; raises :class:`InvalidPayload`."""

    def dump(self, data: Any) -> Any:
        """Validated data as JSON-ready values, for an outgoing frame."""

    def json_schema(self, mode: Mode) -> dict[str, Any]:
        """The JSON Schema (2020-12) of the payload: accepted (``validation``) or sent (``serialization``)."""


class ClassAdapter:
    """What the form and serializer adapters share: the file-field refusal, and the check that the payload
    is an object before the class sees it. A subclass says which fields hold files, and validates."""

    kind = ""

    def __init__(self, schema: Any) -> None:
        self.schema = schema

    def file_fields(self) -> Iterator[tuple[str, Any]]:
        """``(dotted path, field)`` of every field that takes a file."""
        raise NotImplementedError

    def validated(self, payload: dict[str, Any]) -> Any:
        """The data of an object payload; raises :class:`InvalidPayload`."""
        raise NotImplementedError

    @cached_property
    def problem(self) -> str | None:
        """A file field: files do not travel in a JSON payload."""
        for path, field in self.file_fields():
            return (
                f"{self.schema.__name__}.{path} is a {type(field).__name__}: files cannot travel in a JSON "
                "payload. Upload them over HTTP and send their id or URL in a plain field instead."
            )
        return None

    def validate(self, payload: Any) -> Any:
        """The validated data of ``payload``: an object, else :class:`InvalidPayload` (``model_type``)."""
        if self.problem:
            raise TypeError(self.problem)
        if not isinstance(payload, dict):
            raise not_an_object(self.schema)
        try:
            return self.validated(payload)
        except SynchronousOnlyOperation as exc:  # a query on the event loop: say what to change
            raise TypeError(
                f"{self.schema.__name__} queries the database while it validates, which an async def "
                "handle cannot allow: give the message class a plain def handle, or deferred = True "
                "(docs/schema.md)."
            ) from exc


class UnusableSchema:
    """The adapter of a ``schema`` that is neither pydantic, a form nor a serializer: it only refuses."""

    kind = "unusable"

    def __init__(self, schema: Any) -> None:
        self.schema = schema

    @property
    def problem(self) -> str:
        """What is wrong, and what the schema may be."""
        return (
            f"schema = {self.schema!r} is not a pydantic BaseModel subclass, a Django Form class or a "
            "DRF Serializer class."
        )

    def validate(self, payload: Any) -> Any:
        """Never: raises ``TypeError`` (``manage.py check`` reports the class as ``channelbus.E007``)."""
        raise TypeError(self.problem)

    def dump(self, data: Any) -> Any:
        """Never: raises ``TypeError``."""
        raise TypeError(self.problem)

    def json_schema(self, mode: Mode) -> dict[str, Any]:
        """Any JSON value: nothing is known of it."""
        return {}


# -- JSON Schema pieces both adapters build their fields' schemas from ------------------------------------


def bounded(schema: dict[str, Any], **bounds: Any) -> dict[str, Any]:
    """``schema`` with the bounds that are set (``minimum=None`` is left out)."""
    return {**schema, **{key: value for key, value in bounds.items() if value is not None}}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null, as pydantic writes an optional field: ``anyOf`` of both."""
    return {"anyOf": [schema, {"type": "null"}]} if schema else schema


def described(schema: dict[str, Any], title: Any, description: Any) -> dict[str, Any]:
    """``schema`` with the field's label and help text, when it has them (lazy text made plain)."""
    extra = {"title": str(title) if title else None, "description": str(description) if description else None}
    return bounded(schema, **extra)


def object_schema(schema: type[Any], properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """The object schema of a form or serializer class: its fields, its name and its docstring."""
    result: dict[str, Any] = {"type": "object", "title": schema.__name__, "properties": properties}
    if required:
        result["required"] = required
    doc = (schema.__doc__ or "").strip()
    return bounded(result, description=doc or None)


#: Builds the schema of one field's value from the field.
Builder = Callable[[Any], dict[str, Any]]


def ranged(*types: str) -> Builder:
    """A builder of a number of ``types`` within the field's ``min_value`` and ``max_value``."""
    kind: Any = types[0] if len(types) == 1 else list(types)
    return lambda field: bounded({"type": kind}, minimum=field.min_value, maximum=field.max_value)


def formatted(fmt: str) -> Builder:
    """A builder of a string in format ``fmt`` (``date``, ``email``...)."""
    return lambda field: {"type": "string", "format": fmt}


#: String fields with a JSON Schema format, by class name: Django's forms and DRF name them alike.
STRING_FORMATS = {
    "EmailField": "email",
    "URLField": "uri",
    "UUIDField": "uuid",
    "DateTimeField": "date-time",
    "DateField": "date",
    "TimeField": "time",
    "DurationField": "duration",
}


def formatted_fields(module: Any) -> list[tuple[Any, Builder]]:
    """The builders of ``module``'s string fields with a format (``django.forms`` or DRF's ``fields``)."""
    return [(getattr(module, name), formatted(fmt)) for name, fmt in STRING_FORMATS.items()]


def pk_schema(model: type[models.Model]) -> dict[str, Any]:
    """A model's primary key: ``integer`` for the integer fields, else ``string`` (UUIDs, slugs)."""
    return {"type": "integer" if isinstance(model._meta.pk, models.IntegerField) else "string"}


def build_with(builders: list[tuple[Any, Builder]], field: Any) -> dict[str, Any]:
    """The schema by the first builder for a kind ``field`` is of; ``{}`` (any value) for an unknown kind."""
    for kinds, build in builders:  # subclasses come before their bases: FloatField is an IntegerField
        if isinstance(field, kinds):
            return build(field)
    return {}
