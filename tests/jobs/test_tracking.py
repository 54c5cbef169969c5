"""Connection tracking through jobs, the per-connection session, and closing stale rows."""

import asyncio
import time

import pytest
from django.test import override_settings

from channelbus import background
from channelbus.jobs.tracking import connection_closed, connection_created
from channelbus.models import Connection
from channelbus.session import ConnectionSession
from channelbus.transport import get_hub
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


async def _background_done():
    """Wait for channelbus's background work on this loop: tracking jobs (run inside the enqueue in tests)."""
    loop = asyncio.get_running_loop()
    await wait_for(
        lambda: not [t for t in background._running if t.get_loop() is loop and not t.done()],
        what="channelbus's background work done",
    )


async def test_rows_are_written_by_jobs_and_signals_come_from_the_worker(bus_client, user):
    created, closed = [], []

    def on_created(sender, connection, **kwargs):
        created.append(connection)

    def on_closed(sender, connection, **kwargs):
        closed.append(connection)

    connection_created.connect(on_created)
    connection_closed.connect(on_closed)
    try:
        with override_settings(CHANNELBUS={"TRACK_CONNECTIONS": True}):
            client = await bus_client(user=user, headers=[(b"user-agent", b"pytest-agent")])
        await wait_for(lambda: created, what="connection_created sent")
        await _background_done()
        row = await Connection.objects.aget()
        assert row.user_id == user.pk
        assert row.user_agent == "pytest-agent"
        assert row.is_open
        assert [c.address for c in created] == [row.address]
        await client.close()
        await wait_for(lambda: closed, what="connection_closed sent")
        await _background_done()
        await row.arefresh_from_db()
        assert not row.is_open
        assert [c.address for c in closed] == [row.address]
    finally:
        connection_created.disconnect(on_created)
        connection_closed.disconnect(on_closed)


async def test_last_activity_is_updated_at_most_every_interval(bus_client, user):
    interval = 1  # ACTIVITY_INTERVAL: a positive integer (channelbus.E003), so 1 s is the shortest
    # The consumer starts its interval between these two times (before it accepts the socket).
    earliest_due = time.monotonic() + interval
    with override_settings(CHANNELBUS={"TRACK_CONNECTIONS": True, "ACTIVITY_INTERVAL": interval}):
        client = await bus_client(user=user)
    latest_due = time.monotonic() + interval
    row = await wait_for(lambda: Connection.objects.afirst(), what="the row written")
    first = row.last_activity
    await client.request("s.ping")  # within the interval: no update
    assert time.monotonic() < earliest_due, "too slow: the first ping may have come after the interval"
    await _background_done()  # an update job started for the ping would have run by now
    assert (await Connection.objects.aget()).last_activity == first
    await wait_for(lambda: time.monotonic() >= latest_due, timeout=interval + 1, what="the interval passed")
    await client.request("s.ping")
    await wait_for(
        lambda: Connection.objects.filter(last_activity__gt=first).aexists(), what="last_activity moved on"
    )
    assert (await Connection.objects.aget()).last_activity > first


async def test_the_set_up_job_runs_before_strict_messages(bus_client, user):
    from django.core.cache import cache

    from channelbus.jobs.ordering import order_key as _order_key

    with override_settings(CHANNELBUS={"TRACK_CONNECTIONS": True}):
        await bus_client(user=user)
    address = next(iter(get_hub().connections.values())).channel_name
    await wait_for(lambda: cache.get(_order_key(address)) is not None, what="the set-up job's place recorded")
    assert cache.get(_order_key(address)) == 1  # place 1 done: strict messages (place 2 on) may run


async def test_session_from_the_consumer_and_from_sync_code(bus_client, user):
    from channels.db import database_sync_to_async

    client = await bus_client(user=user)
    connection = next(iter(get_hub().connections.values()))
    await connection.session.aset("cart", [1, 2])
    sync_view = ConnectionSession(connection.channel_name)
    assert await database_sync_to_async(sync_view.get)("cart") == [1, 2]
    await database_sync_to_async(sync_view.set)("step", 3)
    assert await connection.session.aget("step") == 3
    await client.close()

    async def cart_dropped() -> bool:
        return await connection.session.aget("cart") is None

    await wait_for(cart_dropped, what="the session's cart dropped")  # cleared in the background
    assert await connection.session.aget("cart") is None  # dropped when the connection closed
