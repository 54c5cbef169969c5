"""Topic kinds used by the tests."""

from channelbus.publishing.binding import ModelBinding, bind
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
class Log(Topic):
    """``test.log:<slug>``: a room that keeps the history of its last 500 frames for 60 s."""

    kind = "test.log"
    key_type = "slug"
    history_size = 500
    history_ttl = 60

    def initial_state(self, user):
        return "fresh"


@topic_kinds.register
class Numbered(Topic):
    """``test.num:<int>``."""

    kind = "test.num"
    key_type = int


@topic_kinds.register
class ShortRoom(Topic):
    """``test.short:<key>``: a slug kind with its own ``key_pattern`` (the demo's chat rooms do this)."""

    kind = "test.short"
    key_type = "slug"
    key_pattern = r"[a-z0-9-]{1,8}"


#: The answers ``test.gate`` gives, one per ``allowed`` call (True once they run out).
GATE_ANSWERS: list[bool] = []


@topic_kinds.register
class Gate(Topic):
    """``test.gate:<slug>``: access that changes between two checks, as when a recheck races a subscribe."""

    kind = "test.gate"
    key_type = "slug"

    def allowed(self, user):
        return GATE_ANSWERS.pop(0) if GATE_ANSWERS else True


@topic_kinds.register
class PlainNote(Topic):
    """``test.plainnote:<pk>``: a model key with the default ``allowed`` (``has_perm``, object or model)."""

    kind = "test.plainnote"
    key_type = Note


class SharedNotesBackend:
    """An object-permission backend (as django-guardian or django-rules): view_note on notes whose text is
    ``shared``, and nothing at the model level."""

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user, perm, obj=None):
        return obj is not None and perm == "testapp.view_note" and obj.text == "shared"


@bind
class NoteBinding(ModelBinding):
    """Notes: ``testapp.note:<pk>`` (owner, or testapp.view_note) and ``testapp.note.all:<owner pk>``."""

    model = Note
    name = "test.note"
    fields = ["id", "owner", "text"]
    page_size = 2

    def instance_allowed(self, user, obj):
        return obj.owner_id == user.pk or super().instance_allowed(user, obj)

    def collection_key(self, obj):
        return str(obj.owner_id)

    def collection_allowed(self, user, key):
        return key == str(user.pk)

    def queryset(self, user, key):
        return Note.objects.filter(owner_id=key).order_by("pk")
