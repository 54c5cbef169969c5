"""Connection tracking through jobs, the per-connection session, and closing stale rows."""

import asyncio

import pytest
from django.core.management import call_command
from django.test import override_settings

from channelbus.jobs.tracking import connection_closed, connection_created
from channelbus.models import Connection
from channelbus.session import ConnectionSession
from channelbus.transport import get_hub

pytestmark = pytest.mark.django_db(transaction=True)


async def _settle():
    for _ in range(20):
        await asyncio.sleep(0.02)


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
        await _settle()
        row = await Connection.objects.aget()
        assert row.user_id == user.pk and row.user_agent == "pytest-agent" and row.is_open
        assert [c.address for c in created] == [row.address]
        await client.close()
        await _settle()
        await row.arefresh_from_db()
        assert not row.is_open and [c.address for c in closed] == [row.address]
    finally:
        connection_created.disconnect(on_created)
        connection_closed.disconnect(on_closed)


async def test_last_activity_is_updated_at_most_every_interval(bus_client, user):
    with override_settings(CHANNELBUS={"TRACK_CONNECTIONS": True, "ACTIVITY_INTERVAL": 2}):
        client = await bus_client(user=user)
    await _settle()
    first = (await Connection.objects.aget()).last_activity
    await client.request("s.ping")  # within the interval: no update
    await _settle()
    assert (await Connection.objects.aget()).last_activity == first
    await asyncio.sleep(2.1)
    await client.request("s.ping")
    await _settle()
    assert (await Connection.objects.aget()).last_activity > first


async def test_the_set_up_job_runs_before_strict_messages(bus_client, user):
    from django.core.cache import cache

    from channelbus.jobs.ordering import order_key as _order_key

    with override_settings(CHANNELBUS={"TRACK_CONNECTIONS": True}):
        await bus_client(user=user)
    await _settle()
    address = next(iter(get_hub().connections.values())).channel_name
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
    await _settle()
    assert await connection.session.aget("cart") is None  # dropped when the connection closed


def test_close_stale_rows(db, user):
    from django.utils import timezone

    now = timezone.now()
    Connection.objects.create(address="a|1", user=user, opened_at=now, last_activity=now)
    Connection.objects.create(address="a|2", opened_at=now, last_activity=now - timezone.timedelta(hours=2))
    call_command("channelbus_close_stale", "--older-than", "3600")
    assert list(Connection.objects.filter(closed_at__isnull=True).values_list("address", flat=True)) == [
        "a|1"
    ]
    call_command("channelbus_close_stale", "--all")
    assert not Connection.objects.filter(closed_at__isnull=True).exists()


@pytest.mark.urls("tests.admin_urls")
def test_the_admin_lists_searches_and_shows_connections(admin_client, user):
    from django.urls import reverse
    from django.utils import timezone

    now = timezone.now()
    row = Connection.objects.create(
        address="test.hub|open1",
        user=user,
        opened_at=now,
        last_activity=now,
        user_agent="pytest-agent/1.0",
        ip="127.0.0.1",
    )
    Connection.objects.create(address="test.hub|closed1", opened_at=now, last_activity=now, closed_at=now)
    changelist = reverse("admin:channelbus_connection_changelist")
    page = admin_client.get(changelist)
    assert page.status_code == 200
    assert {c.address for c in page.context["cl"].result_list} == {"test.hub|open1", "test.hub|closed1"}
    assert "test.hub|open1" in page.text and "test.hub|closed1" in page.text
    found = admin_client.get(changelist, {"q": "pytest-agent"})  # search_fields has user_agent
    assert found.status_code == 200 and list(found.context["cl"].result_list) == [row]
    change = admin_client.get(reverse("admin:channelbus_connection_change", args=[row.pk]))
    assert change.status_code == 200
    assert "pytest-agent/1.0" in change.text and "alice" in change.text
    assert 'name="address"' not in change.text  # read-only fields: shown, not editable
