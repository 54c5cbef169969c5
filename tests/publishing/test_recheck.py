"""Rechecks (channelbus.publishing.recheck): arecheck and recheck remove followers who lost access."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction

from channelbus.publishing.recheck import arecheck, recheck
from channelbus.transport import get_hub
from tests.testapp.models import Note
from tests.testapp.topics import Room

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user(username="bob", password="x")


async def follow(bus_client, user, topic):
    client = await bus_client(user=user)
    await client.request("topic.subscribe", {"topic": topic})
    return client


async def topics_of(client):
    return (await client.request("topic.list"))["topics"]


def followers(topic, hub=None):
    """Who follows ``topic`` through ``hub`` (the running loop's hub by default)."""
    return {c.user.username for c in (hub or get_hub()).members.get(topic, ())}


async def test_arecheck_removes_a_follower_who_lost_access_and_says_why(bus_client, user, bob):
    note = await Note.objects.acreate(owner=user, text="mine")
    topic = f"testapp.note:{note.pk}"
    alice = await follow(bus_client, user, topic)
    await database_sync_to_async(bob.user_permissions.add)(
        await Permission.objects.aget(codename="view_note")
    )
    viewer = await follow(bus_client, await get_user_model().objects.aget(pk=bob.pk), topic)
    note.owner = bob
    await note.asave()
    await arecheck(note)
    assert (await alice.receive("topic.left"))["p"] == {
        "topic": topic,
        "reason": f"You may not subscribe to {topic}.",
    }
    assert topic not in await topics_of(alice)
    assert followers(topic) == {"bob"}  # bob still may, through the model permission
    assert topic in await topics_of(viewer)
    assert [f["t"] for f in [await viewer.receive()]] == ["test.note"]  # the binding's update, no topic.left
    await viewer.assert_nothing_received()


async def test_arecheck_keeps_followers_who_still_may(bus_client, user):
    client = await follow(bus_client, user, "test.room:kept")
    await arecheck("test.room:kept")
    await arecheck(Room("kept"))
    await client.assert_nothing_received()
    assert followers("test.room:kept") == {"alice"}


async def test_arecheck_takes_what_publish_takes_and_refuses_unknown_kinds():
    with pytest.raises(ValueError, match=r"no topic kind 'nosuch\.kind'"):
        await arecheck("nosuch.kind:1")
    with pytest.raises(TypeError):
        await arecheck(object())


class RollBack(Exception):
    pass


def change_owner_and_recheck(note, new_owner, *, fail, topic, hub):
    """In a transaction: give the note away and ask for a recheck; returns the followers before the commit."""
    try:
        with transaction.atomic():
            note.owner = new_owner
            note.save()
            recheck(note)
            before_commit = followers(topic, hub)
            if fail:
                raise RollBack
    except RollBack:
        pass
    return before_commit


async def test_recheck_waits_for_the_commit(bus_client, user, bob):
    note = await Note.objects.acreate(owner=user, text="mine")
    topic = f"testapp.note:{note.pk}"
    client = await follow(bus_client, user, topic)
    before_commit = await database_sync_to_async(change_owner_and_recheck)(
        note, bob, fail=False, topic=topic, hub=get_hub()
    )
    assert before_commit == {"alice"}  # not rechecked inside the transaction
    frame = await client.receive("topic.left")
    assert frame["p"] == {"topic": topic, "reason": f"You may not subscribe to {topic}."}
    assert followers(topic) == set()


async def test_recheck_is_dropped_on_rollback(bus_client, user, bob):
    note = await Note.objects.acreate(owner=user, text="mine")
    topic = f"testapp.note:{note.pk}"
    client = await follow(bus_client, user, topic)
    before_commit = await database_sync_to_async(change_owner_and_recheck)(
        note, bob, fail=True, topic=topic, hub=get_hub()
    )
    assert before_commit == {"alice"}
    await client.assert_nothing_received(0.2)  # neither topic.left nor the binding's rolled-back update
    assert followers(topic) == {"alice"}


async def test_recheck_from_the_event_loop_runs_without_a_transaction(bus_client, user, bob):
    note = await Note.objects.acreate(owner=user, text="mine")
    topic = f"testapp.note:{note.pk}"
    client = await follow(bus_client, user, topic)
    note.owner = bob
    await note.asave()
    recheck(note)  # sync code called on the loop: scheduled there at once
    assert (await client.receive("topic.left"))["p"]["topic"] == topic


def test_recheck_refuses_a_bad_target_where_it_is_called():
    with pytest.raises(ValueError, match=r"no topic kind 'test\.rooom'"), transaction.atomic():
        recheck("test.rooom:a")
