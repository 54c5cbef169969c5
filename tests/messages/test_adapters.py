"""The pieces the form and serializer adapters share: the error, the refusals, the JSON Schema helpers."""

import pytest
from django.contrib.auth import get_user_model

from channelbus.messages.adapters import (
    ClassAdapter,
    InvalidPayload,
    UnusableSchema,
    bounded,
    build_with,
    described,
    formatted,
    not_an_object,
    nullable,
    object_schema,
    pk_schema,
    ranged,
)
from channelbus.session import ConnectionSession


def test_invalid_payload_is_a_value_error_that_says_where():
    exc = InvalidPayload(
        [
            {"loc": ["items", 0, "name"], "msg": "Required", "type": "required"},
            {"loc": [], "msg": "Bad", "type": "x"},
        ]
    )
    assert isinstance(exc, ValueError)
    assert str(exc) == "items.0.name: Required; p: Bad"
    assert exc.errors[0]["loc"] == ["items", 0, "name"]


def test_not_an_object_is_pydantics_model_type():
    assert not_an_object(ConnectionSession).errors == [
        {
            "loc": [],
            "msg": "Input should be an object with the fields of ConnectionSession",
            "type": "model_type",
        }
    ]


def test_an_unusable_schema_only_refuses():
    adapter = UnusableSchema(42)
    assert (
        adapter.problem
        == "schema = 42 is not a pydantic BaseModel subclass, a Django Form class or a DRF Serializer class."
    )
    for call in (adapter.validate, adapter.dump):
        with pytest.raises(TypeError, match="schema = 42"):
            call({})
    assert adapter.json_schema("validation") == {}


def test_a_class_adapter_checks_files_and_objects_before_its_subclass():
    class Fake(ClassAdapter):
        kind = "fake"
        files: list = []

        def file_fields(self):
            return iter(self.files)

        def validated(self, payload):
            return {"seen": payload}

    assert Fake(ConnectionSession).validate({"a": 1}) == {"seen": {"a": 1}}
    with pytest.raises(InvalidPayload):
        Fake(ConnectionSession).validate([1])
    with_file = Fake(ConnectionSession)
    with_file.files = [("avatar", object())]
    assert with_file.problem.startswith("ConnectionSession.avatar is a object: files cannot travel")
    with pytest.raises(TypeError, match="files cannot travel"):
        with_file.validate({})


class Field:
    min_value, max_value = 1, None


def test_json_schema_helpers():
    assert bounded({"type": "string"}, minLength=1, maxLength=None) == {"type": "string", "minLength": 1}
    assert nullable({"type": "integer"}) == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert nullable({}) == {}  # any value takes null already
    assert described({"type": "string"}, "Name", "") == {"type": "string", "title": "Name"}
    assert ranged("integer")(Field()) == {"type": "integer", "minimum": 1}
    assert ranged("number", "string")(Field()) == {"type": ["number", "string"], "minimum": 1}
    assert formatted("date")(Field()) == {"type": "string", "format": "date"}
    assert build_with([(str, lambda f: {"type": "string"}), (int, lambda f: {"type": "integer"})], 3) == {
        "type": "integer"
    }
    assert build_with([(str, lambda f: {"type": "string"})], 3.5) == {}


def test_object_schema_and_pk_schema():
    class Contact:
        """Who to write to."""

    assert object_schema(Contact, {"a": {}}, ["a"]) == {
        "type": "object",
        "title": "Contact",
        "properties": {"a": {}},
        "required": ["a"],
        "description": "Who to write to.",
    }
    assert "required" not in object_schema(Contact, {}, [])
    assert pk_schema(get_user_model()) == {"type": "integer"}
