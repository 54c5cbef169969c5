"""``manage.py channelbus_close_stale`` (channelbus/management/commands/channelbus_close_stale.py)."""

from django.core.management import call_command

from channelbus.models import Connection


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
