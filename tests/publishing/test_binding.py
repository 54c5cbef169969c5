"""Model binding: changes published after commit, to permitted followers only."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db import transaction

from channelbus.publishing.binding import notify_changed
from channelbus.testing import RequestFailed
from tests.testapp.models import Note

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user(username="bob")


async def test_create_update_delete_reach_collection_and_instance(bus_client, user):
    client = await bus_client(user=user)
    state = await client.request("topic.subscribe", {"topic": f"testapp.note.all:{user.pk}"})
    epoch = state["epoch"]
    assert state["state"] == {"items": [], "offset": 0, "count": 0, "more": False}
    note = await Note.objects.acreate(owner=user, text="one")
    created = await client.receive()
    assert created == {
        "t": "test.note",
        "c": f"testapp.note.all:{user.pk}",
        "p": {"action": "create", "pk": note.pk, "data": {"id": note.pk, "owner": user.pk, "text": "one"}},
        "n": 1,
        "e": epoch,
    }
    await client.request("topic.subscribe", {"topic": f"testapp.note:{note.pk}"})
    note.text = "two"
    await note.asave()
    frames = {f["c"]: f["p"] for f in [await client.receive(), await client.receive()]}
    assert set(frames) == {f"testapp.note:{note.pk}", f"testapp.note.all:{user.pk}"}
    assert all(p["action"] == "update" and p["data"]["text"] == "two" for p in frames.values())
    pk = note.pk
    await note.adelete()
    frames = [await client.receive(), await client.receive()]
    assert all(f["p"] == {"action": "delete", "pk": pk, "data": None} for f in frames)


async def test_collection_initial_state_is_paginated(bus_client, user):
    for text in ("a", "b", "c"):
        await Note.objects.acreate(owner=user, text=text)
    client = await bus_client(user=user)
    state = (await client.request("topic.subscribe", {"topic": f"testapp.note.all:{user.pk}"}))["state"]
    assert [i["text"] for i in state["items"]] == ["a", "b"]
    assert state["count"] == 3
    assert state["more"] is True


async def test_changes_never_reach_a_user_without_permission(bus_client, user, bob):
    alice_tab = await bus_client(user=user)
    bob_tab = await bus_client(user=bob)
    note = await Note.objects.acreate(owner=user, text="private")
    for topic in (f"testapp.note.all:{user.pk}", f"testapp.note:{note.pk}"):
        with pytest.raises(RequestFailed) as exc:
            await bob_tab.request("topic.subscribe", {"topic": topic})
        assert exc.value.type == "error.subscribe"
    await bob_tab.request("topic.subscribe", {"topic": f"testapp.note.all:{bob.pk}"})
    note.text = "still private"
    await note.asave()
    await bob_tab.assert_nothing_received(0.3)
    await alice_tab.assert_nothing_received(0.1)  # alice follows nothing yet


async def test_a_follower_who_loses_access_leaves_before_the_change(bus_client, user, bob):
    note = await Note.objects.acreate(owner=user, text="mine")
    alice_tab = await bus_client(user=user)
    await alice_tab.request("topic.subscribe", {"topic": f"testapp.note:{note.pk}"})
    note.owner = bob
    note.text = "bob's now"
    await note.asave()
    left = await alice_tab.receive()
    assert left["t"] == "topic.left"
    assert left["p"]["topic"] == f"testapp.note:{note.pk}"
    await alice_tab.assert_nothing_received(0.3)


def _bulk_update(owner_id):
    with transaction.atomic():
        Note.objects.filter(owner_id=owner_id).update(text="bulk")
        notify_changed(Note.objects.filter(owner_id=owner_id))


async def test_notify_changed_after_a_queryset_update(bus_client, user):
    await Note.objects.acreate(owner=user, text="x")
    await Note.objects.acreate(owner=user, text="y")
    client = await bus_client(user=user)
    await client.request("topic.subscribe", {"topic": f"testapp.note.all:{user.pk}"})
    await database_sync_to_async(_bulk_update)(user.pk)
    frames = [await client.receive(), await client.receive()]
    assert [f["p"]["data"]["text"] for f in frames] == ["bulk", "bulk"]
    with pytest.raises(TypeError, match="no ModelBinding"):
        notify_changed([user])


async def test_a_row_moving_between_collections_leaves_the_old_one(bus_client, user, bob):
    note = await Note.objects.acreate(owner=user, text="moving")
    alice_tab = await bus_client(user=user)
    bob_tab = await bus_client(user=bob)
    await alice_tab.request("topic.subscribe", {"topic": f"testapp.note.all:{user.pk}"})
    await bob_tab.request("topic.subscribe", {"topic": f"testapp.note.all:{bob.pk}"})
    note.owner = bob
    await note.asave()
    gone = await alice_tab.receive()
    assert gone["c"] == f"testapp.note.all:{user.pk}"
    assert gone["p"] == {
        "action": "delete",
        "pk": note.pk,
        "data": None,
    }
    arrived = await bob_tab.receive()
    assert arrived["c"] == f"testapp.note.all:{bob.pk}"
    assert arrived["p"]["action"] == "create"
    assert arrived["p"]["data"]["owner"] == bob.pk


def _save_in_a_transaction(owner_id, keep):
    """Create a note inside ``atomic()``; say whether anything went out before the commit."""
    from channelbus.testing import capture_published

    with capture_published() as sent:
        try:
            with transaction.atomic():
                Note.objects.create(owner_id=owner_id, text="in a transaction")
                before_commit = len(sent)
                if not keep:
                    raise RuntimeError("roll back")
        except RuntimeError:
            pass
    return before_commit, len(sent)


async def test_a_change_inside_a_transaction_goes_out_after_commit_and_never_after_a_rollback(
    bus_client, user
):
    client = await bus_client(user=user)
    await client.request("topic.subscribe", {"topic": f"testapp.note.all:{user.pk}"})
    assert await database_sync_to_async(_save_in_a_transaction)(user.pk, False) == (0, 0)
    await client.assert_nothing_received(0.2)
    assert await database_sync_to_async(_save_in_a_transaction)(user.pk, True) == (0, 1)
    created = await client.receive()
    assert created["p"]["action"] == "create"
    assert created["p"]["data"]["text"] == "in a transaction"


async def test_actions_choose_which_changes_are_sent(bus_client, user, monkeypatch):
    from tests.testapp.topics import NoteBinding

    monkeypatch.setattr(NoteBinding, "actions", ("create", "delete"))
    client = await bus_client(user=user)
    await client.request("topic.subscribe", {"topic": f"testapp.note.all:{user.pk}"})
    note = await Note.objects.acreate(owner=user, text="new")
    assert (await client.receive())["p"]["action"] == "create"
    note.text = "edited"
    await note.asave()
    await client.assert_nothing_received(0.2)  # no update
    await note.adelete()
    assert (await client.receive())["p"]["action"] == "delete"


async def test_a_schema_instead_of_fields(bus_client, user, monkeypatch):
    from pydantic import BaseModel

    from tests.testapp.topics import NoteBinding

    class NoteOut(BaseModel):
        id: int
        text: str
        owner_id: int

    monkeypatch.setattr(NoteBinding, "schema", NoteOut)
    client = await bus_client(user=user)
    state = await client.request("topic.subscribe", {"topic": f"testapp.note.all:{user.pk}"})
    assert state["state"]["items"] == []
    note = await Note.objects.acreate(owner=user, text="typed")
    created = await client.receive()
    assert created["p"]["data"] == {"id": note.pk, "text": "typed", "owner_id": user.pk}
    client2 = await bus_client(user=user)
    state = await client2.request("topic.subscribe", {"topic": f"testapp.note.all:{user.pk}"})
    assert state["state"]["items"] == [{"id": note.pk, "text": "typed", "owner_id": user.pk}]
