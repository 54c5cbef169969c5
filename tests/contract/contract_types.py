"""Message types the contract tests describe, in registries of their own (the project's stay as they are)."""

from typing import Any

from django import forms
from pydantic import BaseModel, Field

from channelbus import Message, Registry
from channelbus.messages.control import Ping

incoming = Registry("contract incoming")
outgoing = Registry("contract outgoing")
incoming.register(Ping)


class Pair(BaseModel):
    """Two numbers."""

    a: int = Field(ge=0)
    b: int


class Sum(BaseModel):
    """Their sum."""

    sum: int


class NoteForm(forms.Form):
    """A note."""

    text = forms.CharField(max_length=10)


class Noted(BaseModel):
    """A note was written."""

    text: str
    by: str | None = None


@outgoing.register
class NotedOut(Message):
    """Sent to the note's topic."""

    name = "contract.noted"
    schema = Noted


@incoming.register
class AddUp(Message):
    """Adds a and b."""

    name = "contract.add"
    schema = Pair

    async def handle(self) -> Sum:
        return Sum(sum=self.data.a + self.data.b)


@incoming.register
class Write(Message):
    """Writes a note, in a worker."""

    name = "contract.write"
    schema = NoteForm
    deferred = True

    def handle(self) -> NotedOut:
        return NotedOut(text=self.data["text"])


@incoming.register
class Forget(Message):
    """Replies nothing."""

    name = "contract.forget"
    allow_anonymous = True

    async def handle(self) -> None:
        return None


@incoming.register
class Listed(Message):
    name = "contract.list"
    schema = Pair
    concurrent = True

    async def handle(self) -> list[int]:
        return [self.data.a, self.data.b]


@incoming.register
class Untyped(Message):
    name = "contract.untyped"
    schema = Pair

    async def handle(self) -> Any:
        return {"anything": True}


@outgoing.register
class Loose(Message):
    """Any JSON."""

    name = "contract.loose"
