"""What the contract is made of, read from registries: payloads, replies from annotations, errors, kinds."""

from typing import Any

from channelbus.contract.catalog import ANY, NO_PAYLOAD, catalog, default_title, reply_of, summary_of
from channelbus.messages.control import Ping, Pong
from channelbus.messages.forms import FormSchema
from channelbus.topics.control import SubscribedPayload, TopicSubscribe
from tests.contract import contract_types as types


def test_the_incoming_types_with_payload_reply_and_errors():
    cat = catalog(types.incoming, types.outgoing)
    by_name = {inc.name: inc for inc in cat.incoming}
    assert list(by_name) == sorted(by_name)
    add = by_name["contract.add"]
    assert (add.payload, add.reply_type, add.reply) == (types.Pair, "contract.add", types.Sum)
    assert add.errors == (
        "error.rate_limited",
        "error.server",
        "error.unauthorized",
        "error.unavailable",
        "error.validation",
    )
    write = by_name["contract.write"]
    assert isinstance(write.payload, FormSchema)
    assert (write.reply_type, write.reply) == ("contract.noted", types.Noted)  # the Message it returns
    assert "error.job" in write.errors
    forget = by_name["contract.forget"]
    assert (forget.payload, forget.reply) == (NO_PAYLOAD, NO_PAYLOAD)
    assert by_name["contract.list"].reply == list[int]
    assert by_name["contract.untyped"].reply is Any
    assert (by_name["s.ping"].reply_type, by_name["s.ping"].reply) == ("s.pong", ANY)  # built-in: known here


def test_builtin_replies_and_unresolvable_annotations():
    assert reply_of(Ping) == ("s.pong", ANY)
    assert reply_of(TopicSubscribe) == ("topic.subscribed", SubscribedPayload)

    class Broken(types.AddUp):
        name = "contract.broken"

        async def handle(self) -> "NoSuchName":  # noqa: F821 - unresolvable on purpose
            return None

    assert reply_of(Broken) == ("contract.broken", Any)


def test_the_outgoing_types_errors_frames_and_the_socket():
    cat = catalog(types.incoming, types.outgoing, url="/bus/")
    assert [(out.name, out.payload) for out in cat.outgoing] == [
        ("contract.loose", ANY),
        ("contract.noted", types.Noted),
    ]
    assert "error.validation" in [e.name for e in cat.errors]
    assert [f.name for f in cat.frames] == ["s.closing"]
    assert cat.url == "/bus/"
    assert catalog(types.incoming, types.outgoing).url == "/ws/"  # the URL setting
    sent = cat.sent()
    assert ("contract.noted", "Sent to the note's topic.", types.Noted, False) in sent
    assert [name for name, _, _, failed in sent if failed] == [e.name for e in cat.errors]


def test_topic_kinds_their_keys_and_what_is_published_to_them():
    kinds = {kind.name: kind for kind in catalog(types.incoming, types.outgoing).topics}
    assert kinds["user"].key == "a whole number"
    assert kinds["broadcast"].key is None
    assert kinds["chat.room"].key == "a slug: [a-z0-9-]{1,32}"
    assert kinds["demoapp.card"].key == "the primary key of a demoapp.card"
    assert kinds["demoapp.card.all"].key == "optional: what the kind's resolve() accepts"
    assert kinds["demoapp.card"].messages == ("board.card",)  # the model binding says so
    assert kinds["chat.room"].messages == ("chat.message",)


def test_summaries_and_title():
    assert summary_of(types.AddUp) == "Adds a and b."
    assert summary_of(types.Listed) == ""  # no docstring of its own, none of Message's
    assert summary_of(Pong) == "The reply to ``s.ping`` (state ``s``, no payload)."
    assert default_title() == "tests messages"
