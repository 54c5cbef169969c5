"""TypeScript declarations of the contract (tsc compiles the demo's in tests/js: typed-contract.ts and
contract.test.mjs)."""

import pytest

from channelbus.contract.catalog import catalog
from channelbus.contract.typescript import identifier, ts_type, typescript_declarations
from tests.contract import contract_types as types


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({}, "unknown"),
        (True, "unknown"),
        ({"type": "string"}, "string"),
        ({"type": "integer"}, "number"),
        ({"type": ["string", "null"]}, "string | null"),
        ({"const": "s"}, '"s"'),
        ({"enum": ["a", 1, None]}, '"a" | 1 | null'),
        ({"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]}, "string[] | null"),
        (
            {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            "(string | number)[]",
        ),
        ({"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}]}, "[string, boolean]"),
        ({"allOf": [{"$ref": "#/$defs/A"}, {"$ref": "#/$defs/B-Input"}]}, "A & B_Input"),
        ({"type": "object"}, "{ [key: string]: unknown }"),
        ({"type": "object", "additionalProperties": {"type": "integer"}}, "{ [key: string]: number }"),
        ({"type": "object", "additionalProperties": False}, "{ [key: string]: never }"),
    ],
)
def test_ts_type(schema, expected):
    assert ts_type(schema) == expected


def test_objects_have_optional_and_quoted_keys_and_comments():
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Who */ writes"},
            "zip-code": {"type": "string"},
        },
        "required": ["name"],
        "additionalProperties": True,
    }
    assert ts_type(schema) == (
        '{\n  /** Who *\\/ writes */\n  name: string;\n  "zip-code"?: string;\n  [key: string]: unknown;\n}'
    )


def test_identifiers():
    assert identifier("Model-Input") == "Model_Input"
    assert identifier("demoapp__messages__NoticeSchema") == "demoapp__messages__NoticeSchema"
    assert identifier("9lives") == "_9lives"


def test_the_declarations_fill_the_client_maps():
    text = typescript_declarations(catalog(types.incoming, types.outgoing), "Contract")
    assert text.startswith("// The message types of Contract: written by `manage.py channelbus_schema")
    assert "/** Two numbers. */\nexport interface Pair {\n  a: number;\n  b: number;\n}\n" in text
    assert "export interface NoteForm {\n  text: string;\n}" in text
    incoming = text[text.index("interface ChannelbusIncoming") : text.index("interface ChannelbusOutgoing")]
    assert '    /** Adds a and b. */\n    "contract.add": { payload: Pair; reply: Sum };\n' in incoming
    assert '"contract.write": { payload: NoteForm; reply: Noted };' in incoming
    assert '"contract.forget": { payload: null | undefined; reply: null };' in incoming
    assert '"contract.list": { payload: Pair; reply: number[] };' in incoming
    assert '"contract.untyped": { payload: Pair; reply: unknown };' in incoming
    assert '"s.ping": { payload: null | undefined; reply: unknown };' in incoming
    outgoing = text[text.index("interface ChannelbusOutgoing") :]
    assert '"contract.noted": Noted;' in outgoing
    assert '"contract.loose": unknown;' in outgoing
    assert '"error.validation": ValidationError;' in outgoing
    assert '"s.closing": Closing;' in outgoing
    assert text.endswith("  }\n}\n\nexport {};\n")
