"""Closing every socket of a user (channelbus/publishing/closing.py): close_user/aclose_user, and the user
model's receivers: a password change, a deactivation, a deletion and a sign-out close the user's sockets
(s.closing with 4401 and the reason, then the close), after the commit, and nobody else's."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model, logout
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection, transaction
from django.test import RequestFactory, override_settings
from django.test.utils import CaptureQueriesContext

from channelbus import aclose_user, close_user
from channelbus.publishing.closing import (
    REASON_DEACTIVATED,
    REASON_DELETED,
    REASON_PASSWORD,
    REASON_SIGNED_OUT,
)
from channelbus.testing import ConnectionRefused

pytestmark = pytest.mark.django_db(transaction=True)


async def closed_with(client, reason, code=4401):
    """Assert that the server said ``s.closing`` with ``code`` and ``reason`` and closed the socket."""
    frame = await client.receive("s.closing", timeout=3)
    assert frame == {"t": "s.closing", "p": {"code": code, "reason": reason}}
    with pytest.raises(ConnectionRefused):
        await client.receive(timeout=3)
    assert client.close_code == code
    # What the server sees next: the client's side of the close handshake.
    await client.communicator.send_input({"type": "websocket.disconnect", "code": code})
    await client.communicator.wait(timeout=3)


def sign_out(user, **channelbus_settings):
    """``django.contrib.auth.logout`` of a request of ``user`` with a session (sync: run it in a thread)."""
    request = RequestFactory().get("/")
    request.session = SessionStore()
    request.user = user
    with override_settings(CHANNELBUS=channelbus_settings):
        logout(request)


async def test_aclose_user_closes_every_socket_of_that_user_only(bus_client, user):
    bob = await get_user_model().objects.acreate_user(username="bob", password="x")
    first, second = await bus_client(user=user), await bus_client(user=user)
    other = await bus_client(user=bob)
    await aclose_user(user, "Bye.")
    await closed_with(first, "Bye.")
    await closed_with(second, "Bye.")
    assert await other.request("s.ping") is None  # still open
    await aclose_user(bob.pk, "By pk.", code=4403)
    await closed_with(other, "By pk.", code=4403)


async def test_a_password_change_closes_the_users_sockets(bus_client, user):
    bob = await get_user_model().objects.acreate_user(username="bob", password="x")
    mine, other = await bus_client(user=user), await bus_client(user=bob)

    def change_password():
        user.set_password("a new password")
        user.save()

    await database_sync_to_async(change_password)()
    await closed_with(mine, REASON_PASSWORD)
    await other.assert_nothing_received(0.2)


async def test_a_deactivation_closes_the_users_sockets(bus_client, user):
    client = await bus_client(user=user)

    def deactivate():
        user.is_active = False
        user.save(update_fields=["is_active"])

    await database_sync_to_async(deactivate)()
    await closed_with(client, REASON_DEACTIVATED)


async def test_a_deletion_closes_the_users_sockets(bus_client, user):
    client = await bus_client(user=user)
    await database_sync_to_async(user.delete)()
    await closed_with(client, REASON_DELETED)


async def test_a_sign_out_closes_the_users_sockets(bus_client, user):
    client = await bus_client(user=user)
    await database_sync_to_async(sign_out)(user)
    await closed_with(client, REASON_SIGNED_OUT)


async def test_a_sign_out_leaves_the_sockets_open_with_close_on_logout_off(bus_client, user):
    client = await bus_client(user=user)
    await database_sync_to_async(sign_out)(user, CLOSE_ON_LOGOUT=False)
    await client.assert_nothing_received(0.2)


async def test_other_changes_and_a_reactivation_close_nothing(bus_client, user):
    client = await bus_client(user=user)

    def edit():
        user.first_name = "Alice"
        user.save()
        user.last_login = None
        user.save(update_fields=["last_login"])
        get_user_model().objects.create_user(username="carol", password="x")  # a new user: nothing to close

    await database_sync_to_async(edit)()
    await client.assert_nothing_received(0.2)


def test_a_save_of_other_fields_costs_no_extra_query(user):
    with CaptureQueriesContext(connection) as queries:
        user.save(update_fields=["last_login"])
    assert len(queries) == 1  # the UPDATE alone: the old password is read only when it may have changed
    with CaptureQueriesContext(connection) as queries:
        user.save()
    assert len(queries) == 2  # the stored password and is_active, then the UPDATE


async def test_the_close_waits_for_the_commit_and_a_rollback_closes_nothing(bus_client, user):
    client = await bus_client(user=user)

    def rolled_back():
        with pytest.raises(RuntimeError), transaction.atomic():
            user.set_password("never stored")
            user.save()
            raise RuntimeError("rolled back")

    await database_sync_to_async(rolled_back)()
    await client.assert_nothing_received(0.2)

    def committed():
        user.refresh_from_db()
        with transaction.atomic():
            user.set_password("stored")
            user.save()
            # Not yet: the transaction has not committed.
            async_to_sync(client.assert_nothing_received)(0.2)

    await database_sync_to_async(committed)()
    await closed_with(client, REASON_PASSWORD)


async def test_close_user_from_the_event_loop_thread_runs_at_once(bus_client, user):
    client = await bus_client(user=user)
    close_user(user, "From the loop.")  # sync code called by async code: no transaction to wait for
    await closed_with(client, "From the loop.")


async def test_a_closed_user_can_connect_again_with_a_fresh_session(bus_client, user):
    client = await bus_client(user=user)
    await aclose_user(user, "Bye.")
    await closed_with(client, "Bye.")
    again = await bus_client(user=user)
    assert (await again.request("topic.list"))["topics"] == ["broadcast", f"user:{user.pk}"]
