"""``python manage.py channelbus_schema``: the message contract as AsyncAPI, JSON Schema or TypeScript.

Built from the registries as Django's start-up left them (every app's ``messages`` and ``topics``
modules imported), so it says what the running server accepts and sends (``docs/schema.md``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from channelbus.contract import asyncapi_document, catalog, json_schema_document, typescript_declarations
from channelbus.contract.catalog import default_title

FORMATS = ("asyncapi", "jsonschema", "typescript")


class Command(BaseCommand):
    """Write the contract to stdout, or to ``-o FILE``."""

    help = "Write the message contract: an AsyncAPI 3.0 document, JSON Schemas or TypeScript declarations."

    def add_arguments(self, parser: CommandParser) -> None:
        """``--format``, ``-o``/``--output``, ``--title`` and ``--api-version``."""
        parser.add_argument("--format", choices=FORMATS, default="asyncapi", help="what to write (asyncapi)")
        parser.add_argument("-o", "--output", help="write to this file instead of stdout")
        parser.add_argument("--title", default=None, help="the document's title (<project> messages)")
        parser.add_argument("--api-version", default="1", help="the AsyncAPI info.version (1)")

    def handle(self, *args: Any, **options: Any) -> None:
        """Build the document and write it, ending with a newline (JSON indented by 2)."""
        title = options["title"] or default_title()
        contract = catalog()
        if options["format"] == "typescript":
            text = typescript_declarations(contract, title)
        else:
            if options["format"] == "asyncapi":
                document = asyncapi_document(contract, title, options["api_version"])
            else:
                document = json_schema_document(contract, title)
            text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        if options["output"]:
            Path(options["output"]).write_text(text, encoding="utf-8")
        else:
            self.stdout.write(text, ending="")
