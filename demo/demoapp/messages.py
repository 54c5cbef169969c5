"""The demo's message types: echo and add, chat, the board, jobs, a form and server-driven DOM actions."""

import time
from datetime import datetime

from django.contrib.auth import get_user_model
from django.utils.html import format_html
from pydantic import BaseModel, Field

from channelbus import Message, NotFound, apublish, dom, incoming, outgoing, publish

from .forms import ProfileForm
from .models import Card, ChatMessage
from .topics import ROOM_KEY


class EchoSchema(BaseModel):
    """Payload of ``demo.echo``."""

    text: str = Field(min_length=1, max_length=1000)


@incoming.register
class Echo(Message):
    """``demo.echo {"text"}`` replies with the same text."""

    name = "demo.echo"
    schema = EchoSchema

    async def handle(self) -> EchoSchema:  # the reply's type, for the schema (docs/schema.md)
        """Send the text back: the payload as validated, not a copy (this is the echo benchmark's path)."""
        return self.data


#: Integers a browser reads exactly (JavaScript's safe integers); their sum still fits in 64 bits.
SAFE_INT = 2**53 - 1


class AddSchema(BaseModel):
    """Payload of ``demo.add``: two integers that JavaScript can hold exactly."""

    a: int = Field(ge=-SAFE_INT, le=SAFE_INT)
    b: int = Field(ge=-SAFE_INT, le=SAFE_INT)


class AddResult(BaseModel):
    """Reply of ``demo.add``."""

    sum: int


@incoming.register
class Add(Message):
    """``demo.add {"a", "b"}`` replies ``{"sum"}``."""

    name = "demo.add"
    schema = AddSchema

    async def handle(self) -> AddResult:
        """Add the two numbers."""
        return AddResult(sum=self.data.a + self.data.b)


ROOM_PATTERN = rf"^{ROOM_KEY}$"  # the chat.room topic's key


class ChatSendSchema(BaseModel):
    """Payload of ``chat.send``."""

    room: str = Field(pattern=ROOM_PATTERN)
    text: str = Field(min_length=1, max_length=2000)


class ChatMessageSchema(BaseModel):
    """Payload of ``chat.message``."""

    room: str
    id: int
    user: str
    text: str
    at: datetime


class NoticeSchema(BaseModel):
    """Payload of ``demo.notice``."""

    text: str


@outgoing.register
class Notice(Message):
    """``demo.notice {"text"}``: a notification sent to one user's ``user:<pk>`` topic."""

    name = "demo.notice"
    schema = NoticeSchema


@outgoing.register
class ChatMessageOut(Message):
    """``chat.message``: a stored chat message, published to ``chat.room:<room>``."""

    name = "chat.message"
    schema = ChatMessageSchema


@incoming.register
class ChatSend(Message):
    """``chat.send {"room", "text"}`` stores the message and publishes it to the room after commit."""

    name = "chat.send"
    schema = ChatSendSchema
    deferred = True  # it writes to the database: a worker does it

    def handle(self):
        """Runs in a worker: it writes to the database, then notifies users @mentioned in the text."""
        message = ChatMessage.objects.create(room=self.data.room, user=self.user, text=self.data.text)
        publish(ChatMessageOut(message.as_payload()), to=f"chat.room:{message.room}")
        mentioned = {word[1:] for word in self.data.text.split() if word.startswith("@") and len(word) > 1}
        if mentioned:
            author = self.user.get_username()
            for user in get_user_model().objects.filter(username__in=mentioned):
                publish(Notice(text=f"{author} mentioned you in #{message.room}"), to=user)
        return {"id": message.pk}


class ShoutSchema(BaseModel):
    """Payload of ``demo.shout``."""

    text: str = Field(min_length=1, max_length=200)


class ShoutedSchema(BaseModel):
    """Payload of ``demo.shouted``."""

    text: str
    user: str


@outgoing.register
class Shouted(Message):
    """``demo.shouted {"text", "user"}``, published to ``demo.all``."""

    name = "demo.shouted"
    schema = ShoutedSchema


@incoming.register
class Shout(Message):
    """``demo.shout {"text"}``: publishes ``demo.shouted`` to ``demo.all`` without touching the database."""

    name = "demo.shout"
    schema = ShoutSchema

    async def handle(self):
        """Publish to everyone following ``demo.all``."""
        await apublish(Shouted(text=self.data.text, user=self.user.get_username()), to="demo.all")


class CardAddSchema(BaseModel):
    """Payload of ``board.add``."""

    title: str = Field(min_length=1, max_length=200)


class CardUpdateSchema(BaseModel):
    """Payload of ``board.update``."""

    pk: int
    title: str | None = Field(default=None, min_length=1, max_length=200)
    done: bool | None = None


class CardPk(BaseModel):
    """Payload of ``board.delete``."""

    pk: int


def _card(pk: int) -> Card:
    try:
        return Card.objects.get(pk=pk)
    except Card.DoesNotExist:
        raise NotFound(f"No card {pk}.") from None


@incoming.register
class CardAdd(Message):
    """``board.add {"title"}``: the binding publishes the new card to the board."""

    name = "board.add"
    schema = CardAddSchema

    def handle(self):
        """Create the card (in a thread: ORM)."""
        return {"pk": Card.objects.create(title=self.data.title, created_by=self.user).pk}


@incoming.register
class CardUpdate(Message):
    """``board.update {"pk", "title"?, "done"?}``."""

    name = "board.update"
    schema = CardUpdateSchema

    def handle(self):
        """Change the card; the binding publishes the update."""
        card = _card(self.data.pk)
        for field in ("title", "done"):
            value = getattr(self.data, field)
            if value is not None:
                setattr(card, field, value)
        card.save()


@incoming.register
class CardDelete(Message):
    """``board.delete {"pk"}``."""

    name = "board.delete"
    schema = CardPk

    def handle(self):
        """Delete the card; the binding publishes the delete."""
        _card(self.data.pk).delete()


class CountSchema(BaseModel):
    """Payload of ``demo.count``."""

    to: int = Field(ge=1, le=100)


class CountResult(BaseModel):
    """Reply of ``demo.count``."""

    total: int


@incoming.register
class Count(Message):
    """``demo.count {"to"}``: a deferred job that reports progress at each step, then ``{"total"}``."""

    name = "demo.count"
    schema = CountSchema
    deferred = True

    def handle(self) -> CountResult:
        """Count to ``to``, a progress frame per step."""
        for n in range(1, self.data.to + 1):
            time.sleep(0.05)
            self.progress(n, self.data.to, f"step {n}")
        return CountResult(total=self.data.to)


class NoFields(BaseModel):
    """An empty object payload, ``{}``."""


@incoming.register
class Fail(Message):
    """``demo.fail {}``: a deferred job that always fails; after 2 retries the client gets ``error.job``."""

    name = "demo.fail"
    schema = NoFields
    deferred = True
    retries = 2
    retry_delays = (0.2, 0.5)

    def handle(self):
        """Always raise."""
        raise RuntimeError("demo.fail always fails")


class ProfileReply(BaseModel):
    """Reply of ``demo.profile``."""

    msg: str


@incoming.register
class Profile(Message):
    """``demo.profile {"name", "email", "age", "newsletter"}``: a form posted over the socket.

    The schema is the page's own Django form: its validation errors come back as ``error.validation``
    and the client shows each one next to its field; ``self.data`` is the form's ``cleaned_data``.
    """

    name = "demo.profile"
    schema = ProfileForm

    async def handle(self) -> ProfileReply:
        """Nothing is stored: the reply says what was received."""
        return ProfileReply(msg=f"Thanks, {self.data['name']}: we would write to {self.data['email']}.")


@incoming.register
class Drive(Message):
    """``demo.drive {}``: the server drives the sender's page with ``dom.*`` actions (to that tab only)."""

    name = "demo.drive"
    schema = NoFields

    async def handle(self):
        """Publish a few DOM actions to the sending connection; one misses on purpose (see the console)."""
        now = datetime.now().strftime("%H:%M:%S")
        actions = [
            dom.text("#drive-clock", now),
            dom.add_class("#drive-box", "lit"),
            dom.append_html("#drive-log", format_html("<li>Driven by the server at <b>{}</b></li>", now)),
            dom.value("#drive-input", f"set by the server at {now}"),
            dom.attr("#drive-input", "title", "The server set this value"),
            dom.focus("#drive-input"),
            dom.notice(f"The server drove this page at {now}", level="success"),
            dom.text("#not-on-this-page", "a selector that matches nothing is reported in the console"),
        ]
        for action in actions:
            await apublish(action, to=self.meta.channel_name)
        return {"actions": len(actions)}
