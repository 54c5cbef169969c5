"""A Django form as a message's schema: ``schema = ContactForm``.

The payload ``p`` is the form's data (``ContactForm(data=p)``): a JSON object whose keys are the
fields' names. ``self.data`` is the form's ``cleaned_data``. The form's errors come back in
``error.validation`` as pydantic's do, one ``{loc, msg, type}`` per message: ``loc`` is
``[field name]``, or ``[]`` for the form's own errors (``clean()``), and ``type`` is the error's
``code`` (``required``, ``max_length``, ``invalid``...). The browser client's bound forms show each
next to its field.

Refused, with their own errors rather than a server error: a payload that is no JSON object (a list,
a number, null: ``loc`` ``[]``, ``type`` ``model_type``), and an object or a list given to a field
that takes one value (``type`` ``value_type``; Django would take its ``str()``). A form with a file
field cannot be a schema: files do not travel in JSON (system check ``channelbus.E007``).
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterator
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.db import models

from .adapters import (
    Builder,
    ClassAdapter,
    InvalidPayload,
    Mode,
    bounded,
    build_with,
    described,
    formatted_fields,
    nullable,
    object_schema,
    pk_schema,
    ranged,
)

__all__ = ["FormSchema", "field_schema"]

#: Values a field of one value may be given: JSON's scalars.
_SCALARS = (str, int, float, bool, type(None))
#: Fields that take several values: a JSON array.
_MANY = (forms.MultipleChoiceField, forms.ModelMultipleChoiceField)


class FormSchema(ClassAdapter):
    """The adapter of a Django form class (see the module's docstring)."""

    kind = "form"
    schema: type[forms.BaseForm]

    def file_fields(self) -> Iterator[tuple[str, Any]]:
        """The form's file and image fields."""
        declared: dict[str, forms.Field] = getattr(self.schema, "base_fields", {})  # Form's metaclass sets it
        return ((name, field) for name, field in declared.items() if isinstance(field, forms.FileField))

    def validated(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``cleaned_data`` of the form bound to ``payload``; raises :class:`InvalidPayload`."""
        form = self.schema(data=payload)
        shape = _shape_errors(form, payload)  # before is_valid(): Django would take str() of them
        if shape:
            raise InvalidPayload(shape)
        if form.is_valid():
            return form.cleaned_data
        raise InvalidPayload(
            [
                {
                    "loc": [] if name == NON_FIELD_ERRORS else [name],
                    "msg": e["message"],
                    "type": e["code"] or "invalid",
                }
                for name, errors in form.errors.get_json_data().items()
                for e in errors
            ]
        )

    def dump(self, data: Any) -> Any:
        """Cleaned data as JSON: dates and times in ISO 8601, decimals and UUIDs as text, models as pk."""
        return _plain(data)

    def json_schema(self, mode: Mode) -> dict[str, Any]:
        """The form's fields as an object schema: one property per field, the required ones listed."""
        fields = self.schema().fields  # an instance: __init__ may add or change fields
        properties = {name: field_schema(field) for name, field in fields.items()}
        return object_schema(self.schema, properties, [n for n, f in fields.items() if f.required])


def _shape_errors(form: forms.BaseForm, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Values of the wrong JSON kind for their field: an object or a list where one value goes, anything
    but a list of values where several go."""
    errors = []
    for name, field in form.fields.items():
        value = payload.get(name)
        if isinstance(field, forms.JSONField):
            continue
        if isinstance(field, _MANY):
            many = value is None or (isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value))
            if not many:
                errors.append(
                    {"loc": [name], "msg": "Input should be a list of values", "type": "value_type"}
                )
        elif not isinstance(value, _SCALARS):
            errors.append({"loc": [name], "msg": "Input should be one value", "type": "value_type"})
    return errors


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID | datetime.timedelta):
        return str(value)
    return value


def field_schema(field: forms.Field) -> dict[str, Any]:
    """The JSON Schema of one form field's value (``{}``, any value, for a field it does not know)."""
    schema = build_with(_BUILDERS, field)
    if not field.required:
        schema = nullable(schema)  # Django takes null for an empty value
    return described(schema, field.label, field.help_text)


def _boolean(field: Any) -> dict[str, Any]:
    # A required BooleanField must be checked (Django's "This field is required." for false).
    return {"type": "boolean", "const": True} if field.required else {"type": "boolean"}


def _string(field: Any) -> dict[str, Any]:
    # A required field refuses "" ("This field is required."): at least one character.
    shortest = field.min_length if field.min_length is not None else (1 if field.required else None)
    return bounded({"type": "string"}, minLength=shortest, maxLength=field.max_length)


def _choice_schema(field: forms.Field) -> dict[str, Any]:
    """A choice's values: the choices' keys, or a model's pk (``integer`` or ``string``)."""
    if isinstance(field, forms.ModelChoiceField):
        return {} if field.queryset is None else pk_schema(field.queryset.model)
    keys: list[Any] = []
    for key, label in field.choices:  # type: ignore[attr-defined]
        if isinstance(label, list | tuple):  # a named group of choices
            keys.extend(k for k, _ in label)
        elif key not in ("", None):  # the empty choice is an empty value, not a choice
            keys.append(key)
    return {"enum": [k if isinstance(k, str | int | float | bool) else str(k) for k in keys]}


#: How each kind of field's value is described, first match wins.
_BUILDERS: list[tuple[Any, Builder]] = [
    (forms.JSONField, lambda field: {}),
    (_MANY, lambda field: {"type": "array", "items": _choice_schema(field)}),
    (forms.ChoiceField, _choice_schema),  # ModelChoiceField too
    (forms.NullBooleanField, lambda field: {"type": "boolean"}),
    (forms.BooleanField, _boolean),
    ((forms.DecimalField, forms.FloatField), ranged("number")),
    (forms.IntegerField, ranged("integer")),
    *formatted_fields(forms),
    (forms.CharField, _string),
]
