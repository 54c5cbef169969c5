"""A DRF serializer as a message's schema: nested error paths through the consumer, a deferred handler,
its JSON Schema. Skipped only where djangorestframework is not installed (the dev extra installs it)."""

import pytest

serializers = pytest.importorskip("rest_framework.serializers")

from django.contrib.auth import get_user_model  # noqa: E402

from channelbus import BusConsumer, Message, Registry  # noqa: E402
from channelbus.messages import Metadata  # noqa: E402
from channelbus.messages.control import Ping  # noqa: E402
from channelbus.messages.schemas import adapter_for, schema_problem  # noqa: E402
from channelbus.messages.serializers import SerializerSchema, error_list, field_schema  # noqa: E402
from channelbus.testing import RequestFailed  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


class AddressSerializer(serializers.Serializer):
    city = serializers.CharField(max_length=30)
    zip = serializers.RegexField(r"^\d{5}$", required=False)


class ItemSerializer(serializers.Serializer):
    name = serializers.CharField()
    qty = serializers.IntegerField(min_value=1)


class OrderSerializer(serializers.Serializer):
    """An order: who, where, what."""

    customer = serializers.CharField(max_length=20)
    address = AddressSerializer()
    items = ItemSerializer(many=True)
    tags = serializers.ListField(child=serializers.IntegerField(), required=False)
    note = serializers.CharField(allow_blank=True, allow_null=True, required=False)
    id = serializers.IntegerField(read_only=True)

    def validate(self, attrs):
        if attrs["customer"] == "nobody":
            raise serializers.ValidationError("Say who you are.", code="anonymous")
        return attrs


registry = Registry("serializer tests")
registry.register(Ping)


@registry.register
class Order(Message):
    name = "drf.order"
    schema = OrderSerializer

    async def handle(self):
        return {"data": self.data}


@registry.register
class DeferredOrder(Message):
    name = "drf.deferred_order"
    schema = OrderSerializer
    deferred = True

    def handle(self):
        return {"items": sum(item["qty"] for item in self.data["items"])}


class OrderConsumer(BusConsumer):
    registry = registry


ORDER = {"customer": "Ada", "address": {"city": "Paris"}, "items": [{"name": "tea", "qty": "2"}]}


async def test_self_data_is_the_validated_data(bus_client, user):
    client = await bus_client(OrderConsumer.as_asgi(), user=user)
    assert await client.request("drf.order", {**ORDER, "tags": ["3"], "id": 99}) == {
        "data": {
            "customer": "Ada",
            "address": {"city": "Paris"},
            "items": [{"name": "tea", "qty": 2}],
            "tags": [3],
        }
    }


async def test_nested_errors_have_their_whole_path(bus_client, user):
    client = await bus_client(OrderConsumer.as_asgi(), user=user)
    bad = {
        "customer": "x" * 21,
        "address": {"zip": "7500"},
        "items": [{"name": "tea", "qty": 1}, {"qty": 0}],
        "tags": [1, "two"],
    }
    with pytest.raises(RequestFailed) as exc:
        await client.request("drf.order", bad)
    assert exc.value.type == "error.validation"
    assert exc.value.payload["type_name"] == "drf.order"
    assert {(tuple(e["loc"]), e["type"]) for e in exc.value.payload["errors"]} == {
        (("customer",), "max_length"),
        (("address", "city"), "required"),
        (("address", "zip"), "invalid"),
        (("items", 1, "name"), "required"),
        (("items", 1, "qty"), "min_value"),
        (("tags", 1), "invalid"),
    }
    with pytest.raises(RequestFailed) as exc:
        await client.request("drf.order", {**ORDER, "customer": "nobody"})
    assert exc.value.payload["errors"] == [{"loc": [], "msg": "Say who you are.", "type": "anonymous"}]


@pytest.mark.parametrize("payload", [[ORDER], 3, None])
async def test_a_payload_that_is_no_object_is_a_validation_error(bus_client, user, payload):
    client = await bus_client(OrderConsumer.as_asgi(), user=user)
    with pytest.raises(RequestFailed) as exc:
        await client.request("drf.order", payload)
    assert exc.value.payload["errors"] == [
        {
            "loc": [],
            "msg": "Input should be an object with the fields of OrderSerializer",
            "type": "model_type",
        }
    ]


async def test_a_deferred_handler(bus_client, user):
    client = await bus_client(OrderConsumer.as_asgi(), user=user)
    assert await client.request("drf.deferred_order", ORDER) == {"items": 2}
    assert [frame["s"] for frame in client.states] == ["q", "r"]
    with pytest.raises(RequestFailed) as exc:
        await client.request("drf.deferred_order", {**ORDER, "items": [{"name": "tea"}]})
    assert exc.value.payload["errors"] == [
        {"loc": ["items", 0, "qty"], "msg": "This field is required.", "type": "required"}
    ]


def test_an_outgoing_message_dumps_the_representation():
    class OrderOut(Message):
        name = "drf.order_out"
        schema = OrderSerializer

    message = OrderOut(ORDER)
    assert message.data["items"] == [{"name": "tea", "qty": 2}]  # validated: "2" is 2
    assert message.payload() == {  # as DRF represents it: note (allow_null) as null
        "customer": "Ada",
        "address": {"city": "Paris"},
        "items": [{"name": "tea", "qty": 2}],
        "note": None,
    }


def test_a_file_field_even_nested_is_refused():
    class Attachment(serializers.Serializer):
        file = serializers.FileField()

    class Mail(serializers.Serializer):
        subject = serializers.CharField()
        attachments = Attachment(many=True)

    class MailMessage(Message):
        name = "drf.mail"
        schema = Mail

    assert schema_problem(Mail).startswith("Mail.attachments.file is a FileField: files cannot travel")
    with pytest.raises(TypeError, match="files cannot travel"):
        MailMessage.from_payload({"subject": "x", "attachments": []}, Metadata())


def test_error_list_flattens_drf_errors():
    errors = {
        "non_field_errors": ["whole"],
        "a": {"b": ["deep"]},
        "c": [{}, {"d": ["in list"]}],
        "e": {0: ["first"]},
    }
    assert [(e["loc"], e["msg"]) for e in error_list(errors, [])] == [
        ([], "whole"),
        (["a", "b"], "deep"),
        (["c", 1, "d"], "in list"),
        (["e", 0], "first"),
    ]


def test_the_json_schema_of_a_serializer_both_ways():
    adapter = adapter_for(OrderSerializer)
    assert isinstance(adapter, SerializerSchema)
    taken = adapter.json_schema("validation")
    assert taken["title"] == "OrderSerializer"
    assert taken["description"] == "An order: who, where, what."
    assert taken["required"] == ["customer", "address", "items"]
    assert "id" not in taken["properties"]  # read-only: never taken
    address = taken["properties"]["address"]
    assert address["properties"]["city"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 30,
        "title": "City",
    }
    assert address["required"] == ["city"]
    assert taken["properties"]["items"]["type"] == "array"
    assert taken["properties"]["items"]["items"]["properties"]["qty"] == {
        "type": "integer",
        "minimum": 1,
        "title": "Qty",
    }
    assert taken["properties"]["tags"] == {"type": "array", "items": {"type": "integer"}, "title": "Tags"}
    assert taken["properties"]["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Note"}
    given = adapter.json_schema("serialization")
    assert given["properties"]["id"] == {"type": "integer", "title": "Id"}
    assert set(given["required"]) == set(given["properties"])


@pytest.mark.parametrize(
    ("field", "schema"),
    [
        (serializers.EmailField(), {"type": "string", "format": "email"}),
        (
            serializers.DecimalField(max_digits=5, decimal_places=2, min_value=0),
            {"type": ["number", "string"], "minimum": 0},
        ),
        (serializers.ChoiceField(choices=["a", "b"]), {"enum": ["a", "b"]}),
        (serializers.MultipleChoiceField(choices=[1, 2]), {"type": "array", "items": {"enum": [1, 2]}}),
        (
            serializers.DictField(child=serializers.BooleanField()),
            {"type": "object", "additionalProperties": {"type": "boolean"}},
        ),
        (serializers.PrimaryKeyRelatedField(queryset=get_user_model().objects.all()), {"type": "integer"}),
        (serializers.JSONField(), {}),
    ],
)
def test_field_schemas(field, schema):
    assert field_schema(field, "validation") == schema
