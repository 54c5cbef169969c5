"""Topic kinds with presence, for the presence tests (registered when this module is imported)."""

from __future__ import annotations

from typing import Any

from channelbus.topics import Topic, topic_kinds


def badge(user: Any) -> dict[str, Any]:
    """A member's info read from the database (so the hub calls it in a thread): name and group count."""
    return {"name": user.get_username(), "groups": user.groups.count()}


@topic_kinds.register
class Lobby(Topic):
    """``test.lobby:<slug>``: any signed-in user; members show their display name."""

    kind = "test.lobby"
    key_type = "slug"
    presence = True


@topic_kinds.register
class Desk(Lobby):
    """``test.desk:<slug>``: members carry the info :func:`badge` gives."""

    kind = "test.desk"
    presence = badge


@topic_kinds.register
class Vault(Lobby):
    """``test.vault:<slug>``: only staff may follow it, or see who is in it."""

    kind = "test.vault"

    def allowed(self, user: Any) -> bool:
        """Staff only."""
        return bool(getattr(user, "is_staff", False))


@topic_kinds.register
class OpenLobby(Vault):
    """``test.open_lobby``: everyone, signed-out connections too (who are never members)."""

    kind = "test.open_lobby"
    key_type = None

    def allowed(self, user: Any) -> bool:
        """Everyone."""
        return True


@topic_kinds.register
class Quiet(Lobby):
    """``test.quiet:<slug>``: a kind without presence."""

    kind = "test.quiet"
    presence = False


@topic_kinds.register
class Private(Lobby):
    """``test.private:<pk>``: a user's own room; nobody else may follow it, or see who is in it."""

    kind = "test.private"
    key_type = int

    def allowed(self, user: Any) -> bool:
        """Only the user whose pk is the key."""
        return bool(getattr(user, "is_authenticated", False)) and user.pk == self.key
