"""What a message's ``schema`` may be: a pydantic model, a Django form or a DRF serializer class.

A pydantic model is validated by :class:`~channelbus.messages.Message` itself (the per-frame fast
path). A form or a serializer gets an adapter (:func:`adapter_for`) that validates a payload with it
and turns its errors into the wire form of ``error.validation``, ``{loc, msg, type}``, as pydantic's
are. Anything else gets an :class:`~channelbus.messages.adapters.UnusableSchema`: the system check
``channelbus.E007`` reports it at start-up, and a message of that class raises ``TypeError`` when built.

DRF is optional: a serializer class can only exist once ``rest_framework`` was imported, so this
module looks for it in ``sys.modules`` and never imports it itself.
"""

from __future__ import annotations

import sys
from typing import Any

from django import forms
from pydantic import BaseModel

from .adapters import SchemaAdapter, UnusableSchema
from .forms import FormSchema

__all__ = ["adapter_for", "schema_problem"]


def adapter_for(schema: Any) -> SchemaAdapter | None:
    """The adapter of a message's ``schema``; None for None and for a pydantic model."""
    if schema is None or (isinstance(schema, type) and issubclass(schema, BaseModel)):
        return None
    if isinstance(schema, type):
        if issubclass(schema, forms.BaseForm):
            return FormSchema(schema)
        drf = sys.modules.get("rest_framework.serializers")
        if drf is not None and issubclass(schema, drf.BaseSerializer):
            from .serializers import SerializerSchema  # imports DRF, which is there: it made the class

            return SerializerSchema(schema)
    return UnusableSchema(schema)


def schema_problem(schema: Any) -> str | None:
    """Why a message class cannot use ``schema`` (the system check's text), or None."""
    adapter = adapter_for(schema)
    return None if adapter is None else adapter.problem
