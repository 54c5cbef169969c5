"""Topic kinds used by the tests."""

from channelbus.topics import Topic, topic_kinds

from .models import Note


@topic_kinds.register
class Room(Topic):
    """``test.room:<slug>``: any signed-in user; the state says who asked."""

    kind = "test.room"
    key_type = "slug"

    def initial_state(self, user):
        return {"room": self.key, "for": user.get_username()}


@topic_kinds.register
class NoteTopic(Topic):
    """``testapp.note:<pk>``: the owner, or whoever has testapp.view_note."""

    kind = "testapp.note"
    key_type = Note

    def allowed(self, user):
        return self.key.owner_id == user.pk or super().allowed(user)


@topic_kinds.register
class Numbered(Topic):
    """``test.num:<int>``."""

    kind = "test.num"
    key_type = int
