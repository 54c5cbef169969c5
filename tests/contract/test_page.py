"""What the schema page shows: each message with its payload and reply as TypeScript."""

from channelbus.contract.catalog import catalog
from channelbus.contract.page import page
from tests.contract import contract_types as types


def test_the_page_lists_messages_errors_topics_and_named_types():
    shown = page(catalog(types.incoming, types.outgoing, url="/ws/"), "Contract", "1")
    assert (shown.title, shown.version, shown.url) == ("Contract", "1", "/ws/")
    incoming = {entry.name: entry for entry in shown.incoming}
    add = incoming["contract.add"]
    assert (add.summary, add.payload, add.reply_type, add.reply) == (
        "Adds a and b.",
        "Pair",
        "contract.add",
        "Sum",
    )
    assert "Errors: error.rate_limited, " in add.notes
    write = incoming["contract.write"]
    assert write.reply_type == "contract.noted"
    assert "Deferred: a task worker runs it (states q, then r)." in write.notes
    assert (add.payload_ref, add.reply_ref, write.payload_ref) == ("Pair", "Sum", "NoteForm")
    forget = incoming["contract.forget"]
    assert (forget.payload, forget.payload_ref) == ("none (no p)", "")
    assert incoming["contract.list"].reply_ref == ""  # number[]: no named type to link to
    assert [entry.name for entry in shown.outgoing] == ["contract.loose", "contract.noted"]
    assert "error.validation" in [entry.name for entry in shown.errors]
    assert "s.closing" in [entry.name for entry in shown.errors]
    topics = {entry.name: entry for entry in shown.topics}
    assert "Key: a slug: [a-z0-9-]{1,32}." in topics["chat.room:<key>"].notes
    assert topics["broadcast"].notes == "No key. Every connection joins it."
    types_shown = {entry.name: entry for entry in shown.types}
    assert types_shown["Pair"].payload == "{\n  a: number;\n  b: number;\n}"
