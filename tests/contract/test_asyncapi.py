"""The AsyncAPI 3.0 document: one channel for the socket, an operation per message, replies and states,
topic kinds as channels. (The official parser reads the demo's in tests/js/contract.test.mjs.)"""

from channelbus.contract.asyncapi import ASYNCAPI_VERSION, asyncapi_document, traits
from channelbus.contract.catalog import catalog
from tests.contract import contract_types as types


def document():
    return asyncapi_document(catalog(types.incoming, types.outgoing, url="/ws/"), "Contract", "2")


def test_the_socket_is_one_channel_with_every_message():
    doc = document()
    assert doc["asyncapi"] == ASYNCAPI_VERSION == "3.0.0"
    assert doc["info"]["title"] == "Contract"
    assert doc["info"]["version"] == "2"
    bus = doc["channels"]["bus"]
    assert bus["address"] == "/ws/"
    assert set(bus["messages"]) == set(doc["components"]["messages"])
    for message_id, ref in bus["messages"].items():
        assert ref == {"$ref": f"#/components/messages/{message_id}"}


def test_a_request_is_received_and_answered_by_its_reply_and_errors():
    doc = document()
    operation = doc["operations"]["receive-contract.add"]
    assert operation["action"] == "receive"
    assert operation["channel"] == {"$ref": "#/channels/bus"}
    assert operation["messages"] == [{"$ref": "#/channels/bus/messages/contract.add"}]
    replies = [ref["$ref"].rpartition("/")[2] for ref in operation["reply"]["messages"]]
    assert replies[0] == "contract.add-reply"
    assert "error.validation" in replies
    messages = doc["components"]["messages"]
    request = messages["contract.add"]["payload"]
    assert request["properties"]["t"] == {"const": "contract.add"}
    assert request["properties"]["p"] == {"$ref": "#/components/schemas/Pair"}
    assert request["additionalProperties"] is False  # a client may send t, i and p only
    assert messages["contract.add"]["correlationId"] == {"$ref": "#/components/correlationIds/i"}
    reply = messages["contract.add-reply"]["payload"]
    assert reply["properties"]["s"] == {"const": "s"}
    assert reply["properties"]["p"] == {"$ref": "#/components/schemas/Sum"}
    assert doc["components"]["schemas"]["Sum"]["properties"]["sum"]["type"] == "integer"


def test_a_deferred_request_goes_through_its_states_and_may_reply_with_another_type():
    doc = document()
    replies = [
        ref["$ref"].rpartition("/")[2]
        for ref in doc["operations"]["receive-contract.write"]["reply"]["messages"]
    ]
    assert replies[:3] == ["contract.write-reply", "contract.write-queued", "contract.write-running"]
    assert "error.job" in replies
    messages = doc["components"]["messages"]
    assert messages["contract.write-reply"]["payload"]["properties"]["t"] == {"const": "contract.noted"}
    assert messages["contract.write-queued"]["payload"]["properties"]["s"] == {"const": "q"}
    assert "p" not in messages["contract.write-queued"]["payload"]["properties"]
    running = messages["contract.write-running"]["payload"]["properties"]
    assert (running["s"], running["p"]) == ({"const": "r"}, {"$ref": "#/components/schemas/Progress"})
    assert "Deferred" in doc["operations"]["receive-contract.write"]["description"]


def test_a_type_without_payload_has_no_p():
    messages = document()["components"]["messages"]
    assert "p" not in messages["contract.forget"]["payload"]["properties"]
    assert "p" not in messages["contract.forget-reply"]["payload"]["properties"]  # handle() -> None


def test_outgoing_types_errors_and_closing_are_sent():
    doc = document()
    for name in ("contract.noted", "contract.loose", "error.validation", "error.server", "s.closing"):
        assert doc["operations"][f"send-{name}"]["action"] == "send"
    noted = doc["components"]["messages"]["contract.noted"]["payload"]["properties"]
    assert set(noted) == {"t", "i", "p", "c", "n", "e"}  # it may come through a topic
    failed = doc["components"]["messages"]["error.validation"]["payload"]["properties"]
    assert failed["s"] == {"const": "f"}
    assert doc["components"]["schemas"]["ValidationError"]["properties"]["errors"]["items"] == {
        "$ref": "#/components/schemas/ValidationErrorItem"
    }


def test_topic_kinds_are_channels_with_their_key_and_messages():
    channels = document()["channels"]
    room = channels["topic-chat.room"]
    assert room["address"] == "chat.room:{key}"
    assert room["parameters"] == {"key": {"description": "The topic's key: a slug: [a-z0-9-]{1,32}."}}
    assert room["messages"] == {}  # chat.message is the demo's, not in this contract's registries
    broadcast = channels["topic-broadcast"]
    assert broadcast["address"] == "broadcast"
    assert "parameters" not in broadcast
    assert "Every connection joins it by itself." in broadcast["description"]


def test_traits_say_how_a_type_is_handled():
    assert traits(types.Forget) == "Signed-out users may send it."
    assert traits(types.Listed) == "Handled beside the connection's other messages, not in arrival order."
    assert traits(types.AddUp).startswith("Handled in arrival order")
