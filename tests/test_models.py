"""The ``Connection`` model (channelbus/models.py): one row per tracked connection."""

import datetime

import pytest

from channelbus.models import Connection

pytestmark = pytest.mark.django_db

AT = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def test_a_row_is_open_until_its_close_is_recorded():
    row = Connection.objects.create(address="local|a", opened_at=AT, last_activity=AT)
    assert row.is_open
    assert str(row) == "local|a (open)"
    row.closed_at = AT + datetime.timedelta(seconds=5)
    row.save()
    assert not row.is_open
    assert str(row) == "local|a (closed)"


def test_newest_first_and_one_row_per_address():
    from django.db import IntegrityError, transaction

    Connection.objects.create(address="local|old", opened_at=AT, last_activity=AT)
    Connection.objects.create(
        address="local|new", opened_at=AT + datetime.timedelta(hours=1), last_activity=AT
    )
    assert [c.address for c in Connection.objects.all()] == ["local|new", "local|old"]
    with pytest.raises(IntegrityError), transaction.atomic():
        Connection.objects.create(address="local|old", opened_at=AT, last_activity=AT)


def test_a_deleted_user_leaves_the_row(user):
    row = Connection.objects.create(address="local|u", user=user, opened_at=AT, last_activity=AT)
    user.delete()
    row.refresh_from_db()
    assert row.user is None
