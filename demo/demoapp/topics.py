"""The demo's topic kinds (chat rooms, the shout channel) and the board's model binding."""

from channelbus.publishing.binding import ModelBinding, bind
from channelbus.topics import Topic, topic_kinds

from .models import Card, ChatMessage

ROOM_KEY = r"[a-z0-9-]{1,32}"


@topic_kinds.register
class ChatRoom(Topic):
    """``chat.room:<slug>``: any signed-in user may join; the initial state is the last 50 messages.

    It keeps its last 200 frames (for ``TOPIC_HISTORY_TTL`` seconds, 2 minutes by default): a tab that
    reconnects gets what it missed instead of reloading the room. It keeps presence: who is in the room
    (each signed-in user once, by display name), sent live as presence.diff (docs/presence.md).
    """

    kind = "chat.room"
    key_type = "slug"
    key_pattern = ROOM_KEY  # what chat.send accepts as a room: [a-z0-9-]{1,32}
    history_size = 200
    presence = True
    messages = ("chat.message",)  # what chat.send publishes to it (the contract: docs/schema.md)

    def initial_state(self, user):
        """The room's last 50 messages, oldest first."""
        recent = ChatMessage.objects.filter(room=self.key).select_related("user").order_by("-id")[:50]
        return [m.as_payload() for m in reversed(recent)]


@topic_kinds.register
class ShoutTopic(Topic):
    """``demo.all``: any signed-in user; what ``demo.shout`` publishes to (the fan-out benchmark's path)."""

    kind = "demo.all"
    key_type = None
    messages = ("demo.shouted",)


@bind
class CardBinding(ModelBinding):
    """The shared board: every signed-in user sees and changes every card."""

    model = Card
    name = "board.card"
    fields = ["id", "title", "done"]

    def collection_allowed(self, user, key):
        """Any signed-in user follows the board."""
        return user.is_authenticated

    def instance_allowed(self, user, obj):
        """Any signed-in user follows any card."""
        return user.is_authenticated
