"""Which adapter a message's schema gets: none for pydantic, a form's, a serializer's, or a refusal."""

import pytest
from django import forms
from pydantic import BaseModel

from channelbus import Message
from channelbus.messages.adapters import UnusableSchema
from channelbus.messages.forms import FormSchema
from channelbus.messages.schemas import adapter_for, schema_problem


class Point(BaseModel):
    x: int


class NameForm(forms.Form):
    name = forms.CharField()


def test_pydantic_and_none_need_no_adapter():
    assert adapter_for(None) is None
    assert adapter_for(Point) is None
    assert schema_problem(Point) is None


def test_a_form_class_gets_the_form_adapter():
    adapter = adapter_for(NameForm)
    assert isinstance(adapter, FormSchema)
    assert adapter.kind == "form"
    assert adapter.schema is NameForm
    assert schema_problem(NameForm) is None


def test_a_serializer_class_gets_the_serializer_adapter():
    serializers = pytest.importorskip("rest_framework.serializers")
    from channelbus.messages.serializers import SerializerSchema

    class NameSerializer(serializers.Serializer):
        name = serializers.CharField()

    assert isinstance(adapter_for(NameSerializer), SerializerSchema)


@pytest.mark.parametrize("schema", [dict, Point(x=1), NameForm(), "demo.Form", 42])
def test_anything_else_is_unusable(schema):
    assert isinstance(adapter_for(schema), UnusableSchema)
    assert (
        "is not a pydantic BaseModel subclass, a Django Form class or a DRF Serializer class"
        in schema_problem(schema)
    )


def test_a_message_class_keeps_the_adapter_of_its_own_schema_and_its_subclasses_inherit_it():
    class Named(Message):
        name = "schemas.named"
        schema = NameForm

    class Child(Named):
        name = "schemas.child"

    class Pydantic(Named):
        name = "schemas.pydantic"
        schema = Point

    assert isinstance(Named._schema_adapter, FormSchema)
    assert Child._schema_adapter is Named._schema_adapter
    assert Pydantic._schema_adapter is None
    assert Pydantic({"x": "3"}).data == Point(x=3)
    assert Child({"name": "Ada"}).data == {"name": "Ada"}
