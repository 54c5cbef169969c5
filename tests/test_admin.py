"""The read-only ``Connection`` admin (channelbus/admin.py)."""

import pytest

from channelbus.models import Connection

pytestmark = pytest.mark.django_db


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
    assert "test.hub|open1" in page.text
    assert "test.hub|closed1" in page.text
    found = admin_client.get(changelist, {"q": "pytest-agent"})  # search_fields has user_agent
    assert found.status_code == 200
    assert list(found.context["cl"].result_list) == [row]
    change = admin_client.get(reverse("admin:channelbus_connection_change", args=[row.pk]))
    assert change.status_code == 200
    assert "pytest-agent/1.0" in change.text
    assert "alice" in change.text
    assert 'name="address"' not in change.text  # read-only fields: shown, not editable
