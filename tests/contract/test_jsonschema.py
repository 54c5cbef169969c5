"""JSON Schema 2020-12 of every payload: pydantic, forms and serializers in one set of definitions.
(ajv validates payloads against the demo's document in tests/js/contract.test.mjs.)"""

from typing import Any

from channelbus.contract.catalog import catalog
from channelbus.contract.jsonschema import DIALECT, Schemas, json_schema_document, payload_keys
from channelbus.messages.forms import FormSchema
from tests.contract import contract_types as types


def test_named_parts_are_gathered_and_referenced():
    schemas = Schemas("#/components/schemas/{model}")
    schemas.add("pair", types.Pair, "validation")
    schemas.add("pairs", list[types.Pair], "serialization")
    schemas.add("form", FormSchema(types.NoteForm), "validation")
    schemas.add("any", Any, "serialization")
    schemas.add("none", type(None), "serialization")
    schemas.add("not describable", object(), "serialization")
    by_key, defs = schemas.build()
    assert by_key["pair"] == {"$ref": "#/components/schemas/Pair"}
    assert by_key["pairs"] == {"type": "array", "items": {"$ref": "#/components/schemas/Pair"}}
    assert by_key["form"] == {"$ref": "#/components/schemas/NoteForm"}
    assert by_key["any"] == {}
    assert by_key["not describable"] == {}
    assert by_key["none"] == {"type": "null"}
    assert defs["Pair"]["properties"]["a"] == {"minimum": 0, "title": "A", "type": "integer"}
    assert defs["NoteForm"]["properties"]["text"] == {"type": "string", "minLength": 1, "maxLength": 10}


def test_a_form_named_like_a_model_gets_a_name_of_its_own():
    class Pair(types.NoteForm):  # the same name as the pydantic model types.Pair
        pass

    schemas = Schemas("#/$defs/{model}")
    schemas.add("model", types.Pair, "validation")
    schemas.add("form", FormSchema(Pair), "validation")
    by_key, defs = schemas.build()
    assert by_key == {"model": {"$ref": "#/$defs/Pair"}, "form": {"$ref": "#/$defs/Pair_2"}}
    assert defs["Pair_2"]["title"] == "Pair"


def test_the_document_names_every_payload():
    cat = catalog(types.incoming, types.outgoing)
    document = json_schema_document(cat, "Contract")
    assert document["$schema"] == DIALECT == "https://json-schema.org/draft/2020-12/schema"
    assert document["title"] == "Contract: payloads"
    defs = document["$defs"]
    assert defs["in.contract.add"] == {
        "description": "p of contract.add, sent by clients",
        "$ref": "#/$defs/Pair",
    }
    assert defs["reply.contract.add"]["$ref"] == "#/$defs/Sum"
    assert defs["reply.contract.list"]["items"] == {"type": "integer"}
    assert defs["in.contract.forget"]["type"] == "null"  # no payload: p absent or null
    assert defs["reply.contract.untyped"] == {"description": defs["reply.contract.untyped"]["description"]}
    assert defs["in.contract.write"]["$ref"] == "#/$defs/NoteForm"
    assert defs["out.contract.noted"]["$ref"] == "#/$defs/Noted"
    assert defs["out.error.validation"]["$ref"] == "#/$defs/ValidationError"
    assert defs["state.r"]["$ref"] == "#/$defs/Progress"
    names = [name for _, name, _, _, _ in payload_keys(cat)]
    assert set(names) <= set(defs)
    assert len(names) == len(set(names))
