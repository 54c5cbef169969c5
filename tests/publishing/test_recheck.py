"""Rechecks (channelbus.publishing.recheck): arecheck and recheck remove followers who lost access;
recheck_user rechecks every topic of a user's connections, by itself when their groups or permissions
change (m2m_changed on User.groups, User.user_permissions and Group.permissions, from either side; a
deleted group), with the permissions read again (Django caches them on the connection's user object)."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.test import override_settings

from channelbus.publishing.recheck import (
    arecheck,
    arecheck_user,
    check_access_again,
    forget_cached_permissions,
    recheck,
    recheck_user,
)
from channelbus.transport import get_hub
from tests.redis_support import layer_settings, require_redis
from tests.testapp.models import Note
from tests.testapp.topics import GATE_ANSWERS, NoteBinding, Room

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


# -- rechecks of every topic a user follows ----------------------------------------------------------------


def _grant(bob, how):
    """Give bob testapp.view_note directly (``how`` starts with user/permission.user) or through a group."""
    view = Permission.objects.get(codename="view_note")
    if how.split(".")[0] in ("user_permissions", "permission") and "group" not in how:
        bob.user_permissions.add(view)
        return view, None
    group = Group.objects.create(name="viewers")
    group.permissions.add(view)
    bob.groups.add(group)
    return view, group


#: Each way to take a permission away from bob, through each side of each relation:
#: ``<object>.<relation>.<method>`` (no object: bob's own), or ``group.delete``.
TAKE_AWAY = [
    "user_permissions.remove",
    "user_permissions.clear",
    "permission.user_set.remove",
    "permission.user_set.clear",
    "groups.remove",
    "groups.clear",
    "group.user_set.remove",
    "group.user_set.clear",
    "group.permissions.remove",
    "group.permissions.clear",
    "permission.group_set.remove",
    "permission.group_set.clear",
    "group.delete",
]


def take_away(how, bob, view, group):
    """Run the change ``how`` names (see :data:`TAKE_AWAY`)."""
    *path, method = how.split(".")
    target = {"permission": view, "group": group}.get(path[0], bob)
    for name in path[1:] if target is not bob else path:
        target = getattr(target, name)
    removed = {
        "user_permissions": view,
        "groups": group,
        "user_set": bob,
        "group_set": group,
        "permissions": view,
    }
    getattr(target, method)(*([] if method in ("clear", "delete") else [removed[path[-1]]]))


async def connected_as(bus_client, user, *topics):
    """A connection of ``user`` (its own user object, as a real connection has) following ``topics``."""
    client = await bus_client(user=await get_user_model().objects.aget(pk=user.pk))
    for topic in topics:
        await client.request("topic.subscribe", {"topic": topic})
    return client


@pytest.mark.parametrize("how", TAKE_AWAY)
async def test_a_permission_taken_away_rechecks_every_topic_of_the_users_connections(
    bus_client, user, bob, how
):
    note = await Note.objects.acreate(owner=user, text="alice's")
    view, group = await database_sync_to_async(_grant)(bob, how)
    topics = [f"test.plainnote:{note.pk}", f"testapp.note:{note.pk}", "test.room:kept"]
    tabs = [await connected_as(bus_client, bob, *topics) for _ in range(2)]  # the subscribes cache perms
    alice = await connected_as(bus_client, user, f"testapp.note:{note.pk}")
    await database_sync_to_async(take_away)(how, bob, view, group)
    for tab in tabs:
        left = [(await tab.receive("topic.left"))["p"]["topic"] for _ in range(2)]
        assert sorted(left) == topics[:2]
        assert await topics_of(tab) == ["broadcast", "test.room:kept", f"user:{bob.pk}"]
    assert followers(f"testapp.note:{note.pk}") == {"alice"}
    await alice.assert_nothing_received()


async def test_a_permission_given_or_kept_changes_nothing(bus_client, user, bob):
    note = await Note.objects.acreate(owner=user, text="alice's")
    view, group = await database_sync_to_async(_grant)(bob, "groups.remove")
    client = await connected_as(bus_client, bob, f"test.plainnote:{note.pk}")
    await database_sync_to_async(bob.user_permissions.add)(view)  # a second way to the same permission
    await database_sync_to_async(bob.groups.remove)(group)  # still allowed directly
    other = await database_sync_to_async(Group.objects.create)(name="others")
    await database_sync_to_async(other.user_set.add)(bob)
    await client.assert_nothing_received(0.2)
    assert f"test.plainnote:{note.pk}" in await topics_of(client)


async def test_a_collection_topic_of_a_binding_is_rechecked_too(bus_client, user, bob, monkeypatch):
    """A binding's collection checks the model-level permission (the default): taking it away leaves it."""
    monkeypatch.setattr(
        NoteBinding, "collection_allowed", lambda self, user, key: user.has_perm("testapp.view_note")
    )
    collection = f"testapp.note.all:{user.pk}"
    view, group = await database_sync_to_async(_grant)(bob, "group.permissions.remove")
    client = await connected_as(bus_client, bob, collection)
    await database_sync_to_async(group.permissions.remove)(view)
    assert (await client.receive("topic.left"))["p"] == {
        "topic": collection,
        "reason": f"You may not subscribe to {collection}.",
    }
    await Note.objects.acreate(owner=user, text="not for bob")
    await client.assert_nothing_received(0.2)


async def test_a_collection_recheck_of_a_binding(bus_client, user, bob, monkeypatch):
    """What collection_allowed reads changed (no permission involved): recheck_collection(key)."""
    allowed = {str(user.pk)}
    monkeypatch.setattr(NoteBinding, "collection_allowed", lambda self, u, key: key in allowed)
    collection = f"testapp.note.all:{user.pk}"
    client = await connected_as(bus_client, bob, collection)
    allowed.clear()
    NoteBinding.recheck_collection(str(user.pk))  # on the loop: at once
    assert (await client.receive("topic.left"))["p"]["topic"] == collection


async def test_recheck_user_rechecks_what_the_app_decides(bus_client, user):
    client = await connected_as(bus_client, user, "test.gate:a", "test.room:r")
    GATE_ANSWERS[:] = [False]
    try:
        await arecheck_user(user)
    finally:
        GATE_ANSWERS.clear()
    assert (await client.receive("topic.left"))["p"] == {
        "topic": "test.gate:a",
        "reason": "You may not subscribe to test.gate:a.",
    }
    assert await topics_of(client) == ["broadcast", "test.room:r", f"user:{user.pk}"]
    await arecheck_user([user.pk, user])  # still allowed: nothing
    await client.assert_nothing_received()


def _recheck_user_in_a_transaction(user, *, fail):
    try:
        with transaction.atomic():
            GATE_ANSWERS[:] = [False]
            recheck_user(user)
            if fail:
                raise RollBack
    except RollBack:
        pass


async def test_recheck_user_waits_for_the_commit_and_is_dropped_on_rollback(bus_client, user):
    client = await connected_as(bus_client, user, "test.gate:b")
    try:
        await database_sync_to_async(_recheck_user_in_a_transaction)(user, fail=True)
        await client.assert_nothing_received(0.2)
        assert GATE_ANSWERS == [False]  # never asked
        await database_sync_to_async(_recheck_user_in_a_transaction)(user, fail=False)
        assert (await client.receive("topic.left"))["p"]["topic"] == "test.gate:b"
    finally:
        GATE_ANSWERS.clear()
    recheck_user([])  # nobody: nothing to do


async def test_a_recheck_reads_permissions_again(bus_client, user, bob):
    """Django caches permissions on the user object a connection keeps: a recheck reads them again, also
    after a change no signal tells about (a raw delete of the m2m row)."""
    note = await Note.objects.acreate(owner=user, text="alice's")
    topic = f"test.plainnote:{note.pk}"
    view, _ = await database_sync_to_async(_grant)(bob, "user_permissions")
    client = await connected_as(bus_client, bob, topic)
    [connection] = get_hub().members[topic]
    assert hasattr(connection.user, "_perm_cache")  # cached by the subscribe
    through = get_user_model().user_permissions.through
    await through.objects.filter(user_id=bob.pk, permission_id=view.pk).adelete()
    await arecheck(topic)
    assert (await client.receive("topic.left"))["p"]["topic"] == topic


def test_forget_cached_permissions(bob):
    assert bob.has_perm("testapp.view_note") is False
    assert hasattr(bob, "_perm_cache")
    bob.user_permissions.add(Permission.objects.get(codename="view_note"))
    assert bob.has_perm("testapp.view_note") is False  # Django's cache
    forget_cached_permissions(bob)
    assert bob.has_perm("testapp.view_note") is True
    forget_cached_permissions(bob)
    forget_cached_permissions(bob)  # nothing cached: fine
    note = Note.objects.create(owner=bob, text="x")
    check_access_again(f"test.plainnote:{note.pk}", bob)


async def test_a_group_change_reaches_the_users_connections_through_redis(bus_client, user, bob):
    require_redis()
    with override_settings(CHANNEL_LAYERS=layer_settings("redis")):
        note = await Note.objects.acreate(owner=user, text="alice's")
        topic = f"test.plainnote:{note.pk}"
        _view, group = await database_sync_to_async(_grant)(bob, "group.user_set.remove")
        client = await connected_as(bus_client, bob, topic)
        assert get_hub().cross_process
        await database_sync_to_async(group.user_set.remove)(bob)
        assert (await client.receive("topic.left", timeout=5))["p"]["topic"] == topic
