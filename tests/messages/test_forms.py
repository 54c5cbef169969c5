"""A Django form as a message's schema: through the consumer, in a deferred handler, and its JSON Schema."""

import datetime
import decimal

import pytest
from django import forms
from django.contrib.auth import get_user_model

from channelbus import BusConsumer, Message, Registry
from channelbus.messages import Metadata
from channelbus.messages.adapters import InvalidPayload
from channelbus.messages.control import Ping
from channelbus.messages.forms import FormSchema, field_schema
from channelbus.messages.schemas import schema_problem
from channelbus.testing import RequestFailed

pytestmark = pytest.mark.django_db(transaction=True)


class ContactForm(forms.Form):
    """A name, an age, topics; the form itself refuses the name "nobody"."""

    name = forms.CharField(min_length=2, max_length=20)
    age = forms.IntegerField(min_value=13)
    topics = forms.MultipleChoiceField(choices=[("news", "News"), ("jobs", "Jobs")], required=False)
    subscribe = forms.BooleanField(required=False)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("name") == "nobody":
            raise forms.ValidationError("Say who you are.", code="anonymous")
        return cleaned


registry = Registry("form tests")
registry.register(Ping)


@registry.register
class Contact(Message):
    """Replies with what the handler got as ``self.data``."""

    name = "forms.contact"
    schema = ContactForm

    async def handle(self):
        return {"data": self.data, "type": type(self.data).__name__}


@registry.register
class DeferredContact(Message):
    """The same, in a worker (the tests' immediate task backend)."""

    name = "forms.deferred_contact"
    schema = ContactForm
    deferred = True

    def handle(self):
        self.progress(1, 1)
        return {"name": self.data["name"], "age": self.data["age"]}


class OwnerForm(forms.Form):
    owner = forms.ModelChoiceField(queryset=get_user_model().objects.all())


@registry.register
class SyncOwner(Message):
    """Its form queries the database: fine in a plain def handle's thread."""

    name = "forms.sync_owner"
    schema = OwnerForm

    def handle(self):
        return {"owner": self.data["owner"].get_username()}


@registry.register
class AsyncOwner(Message):
    """The same form on the event loop, where Django refuses the query."""

    name = "forms.async_owner"
    schema = OwnerForm

    async def handle(self):
        return {"owner": self.data["owner"].get_username()}


class FormConsumer(BusConsumer):
    registry = registry


async def connect(bus_client, user):
    return await bus_client(FormConsumer.as_asgi(), user=user)


async def test_self_data_is_the_cleaned_data(bus_client, user):
    client = await connect(bus_client, user)
    reply = await client.request("forms.contact", {"name": " Ada ", "age": "36", "topics": ["news"]})
    # Django cleaned it: the name stripped, the age an int, an absent checkbox False.
    assert reply == {
        "data": {"name": "Ada", "age": 36, "topics": ["news"], "subscribe": False},
        "type": "dict",
    }


async def test_field_errors_come_back_with_a_loc_per_field(bus_client, user):
    client = await connect(bus_client, user)
    with pytest.raises(RequestFailed) as exc:
        await client.request("forms.contact", {"name": "A", "age": 7, "topics": ["cats"]})
    assert exc.value.type == "error.validation"
    assert exc.value.payload["type_name"] == "forms.contact"
    errors = {tuple(e["loc"]): e for e in exc.value.payload["errors"]}
    assert set(errors) == {("name",), ("age",), ("topics",)}
    assert errors["name",] == {
        "loc": ["name"],
        "msg": "Ensure this value has at least 2 characters (it has 1).",
        "type": "min_length",
    }
    assert errors["age",]["type"] == "min_value"
    assert errors["topics",]["type"] == "invalid_choice"


async def test_a_missing_field_is_required_and_the_forms_own_errors_have_an_empty_loc(bus_client, user):
    client = await connect(bus_client, user)
    with pytest.raises(RequestFailed) as exc:
        await client.request("forms.contact", {"name": "Ada"})
    assert exc.value.payload["errors"] == [
        {"loc": ["age"], "msg": "This field is required.", "type": "required"}
    ]
    with pytest.raises(RequestFailed) as exc:
        await client.request("forms.contact", {"name": "nobody", "age": 40})
    assert exc.value.payload["errors"] == [{"loc": [], "msg": "Say who you are.", "type": "anonymous"}]


@pytest.mark.parametrize("payload", [[1, 2], 5, "text", None, True])
async def test_a_payload_that_is_no_object_is_a_validation_error(bus_client, user, payload):
    client = await connect(bus_client, user)
    with pytest.raises(RequestFailed) as exc:
        await client.request("forms.contact", payload)
    assert exc.value.type == "error.validation"
    assert exc.value.payload["errors"] == [
        {"loc": [], "msg": "Input should be an object with the fields of ContactForm", "type": "model_type"}
    ]
    assert await client.request("s.ping") is None  # the connection goes on


async def test_an_object_or_a_list_for_a_one_value_field_is_refused_not_stringified(bus_client, user):
    client = await connect(bus_client, user)
    with pytest.raises(RequestFailed) as exc:
        await client.request("forms.contact", {"name": {"first": "Ada"}, "age": [36], "topics": "news"})
    assert exc.value.payload["errors"] == [
        {"loc": ["name"], "msg": "Input should be one value", "type": "value_type"},
        {"loc": ["age"], "msg": "Input should be one value", "type": "value_type"},
        {"loc": ["topics"], "msg": "Input should be a list of values", "type": "value_type"},
    ]


async def test_a_deferred_handler_validates_in_the_server_and_gets_the_cleaned_data(bus_client, user):
    client = await connect(bus_client, user)
    assert await client.request("forms.deferred_contact", {"name": "Ada", "age": "36"}) == {
        "name": "Ada",
        "age": 36,
    }
    assert [frame["s"] for frame in client.states] == ["q", "r", "r"]
    client.states.clear()
    with pytest.raises(RequestFailed) as exc:
        await client.request("forms.deferred_contact", {"name": "Ada", "age": "old"})
    assert exc.value.payload["errors"] == [
        {"loc": ["age"], "msg": "Enter a whole number.", "type": "invalid"}
    ]
    assert client.states == []  # refused before anything was queued


def test_building_an_outgoing_message_validates_and_dumps_json_ready_values():
    class Row(forms.Form):
        day = forms.DateField()
        price = forms.DecimalField()
        owner = forms.ModelChoiceField(queryset=get_user_model().objects.all())

    class RowMessage(Message):
        name = "forms.row"
        schema = Row

    owner = get_user_model().objects.create_user(username="bob")
    message = RowMessage({"day": "2026-12-03", "price": "1.50", "owner": owner.pk})
    assert message.data == {
        "day": datetime.date(2026, 12, 3),
        "price": decimal.Decimal("1.50"),
        "owner": owner,
    }
    assert message.payload() == {"day": "2026-12-03", "price": "1.50", "owner": owner.pk}
    with pytest.raises(InvalidPayload, match="day: Enter a valid date"):
        RowMessage({"day": "soon", "price": "1", "owner": owner.pk})


def test_a_file_field_is_refused_with_what_to_do_instead():
    class Upload(forms.Form):
        title = forms.CharField()
        picture = forms.ImageField()

    class UploadMessage(Message):
        name = "forms.upload"
        schema = Upload

    problem = schema_problem(Upload)
    assert problem.startswith("Upload.picture is a ImageField: files cannot travel in a JSON payload.")
    assert "Upload them over HTTP" in problem
    with pytest.raises(TypeError, match="files cannot travel"):
        UploadMessage.from_payload({"title": "x"}, Metadata())


def test_the_json_schema_of_a_form():
    schema = FormSchema(ContactForm).json_schema("validation")
    assert schema == {
        "type": "object",
        "title": "ContactForm",
        "description": 'A name, an age, topics; the form itself refuses the name "nobody".',
        "properties": {
            "name": {"type": "string", "minLength": 2, "maxLength": 20},
            "age": {"type": "integer", "minimum": 13},
            "topics": {"anyOf": [{"type": "array", "items": {"enum": ["news", "jobs"]}}, {"type": "null"}]},
            "subscribe": {"anyOf": [{"type": "boolean"}, {"type": "null"}]},
        },
        "required": ["name", "age"],
    }


@pytest.mark.parametrize(
    ("field", "schema"),
    [
        (forms.CharField(), {"type": "string", "minLength": 1}),
        (
            forms.CharField(required=False, label="Nick"),
            {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Nick"},
        ),
        (
            forms.EmailField(help_text="Where we write"),
            {"type": "string", "format": "email", "description": "Where we write"},
        ),
        (forms.FloatField(max_value=1.5), {"type": "number", "maximum": 1.5}),
        (forms.DecimalField(min_value=0), {"type": "number", "minimum": 0}),
        (forms.BooleanField(), {"type": "boolean", "const": True}),
        (forms.DateTimeField(), {"type": "string", "format": "date-time"}),
        (forms.UUIDField(), {"type": "string", "format": "uuid"}),
        (forms.TypedChoiceField(choices=[(1, "one"), ("Group", [(2, "two")])], coerce=int), {"enum": [1, 2]}),
        (forms.ModelChoiceField(queryset=get_user_model().objects.none()), {"type": "integer"}),
        (forms.JSONField(), {}),
        (forms.SplitDateTimeField(), {}),
    ],
)
def test_field_schemas(field, schema):
    assert field_schema(field) == schema


async def test_validation_that_queries_the_database_needs_a_thread(bus_client, user, caplog):
    client = await connect(bus_client, user)
    assert await client.request("forms.sync_owner", {"owner": user.pk}) == {"owner": "alice"}
    with pytest.raises(RequestFailed) as exc:
        await client.request("forms.async_owner", {"owner": user.pk})
    assert exc.value.type == "error.server"
    assert "OwnerForm queries the database while it validates" in caplog.text
    assert "give the message class a plain def handle, or deferred = True" in caplog.text
