"""The message contract as documents, generated from the registries so it never drifts from the code.

``catalog`` reads the contract (message types both ways, replies, errors, topic kinds); ``jsonschema``
describes every payload in JSON Schema 2020-12; ``asyncapi`` writes the AsyncAPI 3.0 document;
``typescript`` the ``.d.ts`` that types the browser client's ``request()``, ``send()`` and ``on()``.
``manage.py channelbus_schema`` writes any of them (``docs/schema.md``).
"""

from __future__ import annotations

from .asyncapi import asyncapi_document
from .catalog import Catalog, catalog
from .jsonschema import json_schema_document
from .typescript import typescript_declarations

__all__ = ["Catalog", "asyncapi_document", "catalog", "json_schema_document", "typescript_declarations"]
