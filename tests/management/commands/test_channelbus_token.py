"""``manage.py channelbus_token <username>`` (channelbus/management/commands/channelbus_token.py)."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.django_db
def test_channelbus_token_signs_a_client_in_as_the_user():
    from django.contrib.auth import get_user_model

    from channelbus.server.auth import user_for_token

    alice = get_user_model().objects.create_user(username="alice")
    out, err = StringIO(), StringIO()
    call_command("channelbus_token", "alice", stdout=out, stderr=err)
    assert user_for_token(out.getvalue().strip()) == alice
    assert "valid for 3600 s" in err.getvalue()
    with pytest.raises(CommandError, match=r"No user with username 'nobody'\."):
        call_command("channelbus_token", "nobody")
    alice.is_active = False
    alice.save()
    with pytest.raises(CommandError, match="User 'alice' is inactive"):
        call_command("channelbus_token", "alice")
