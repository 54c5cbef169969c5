"""The demo's message types: ``demo.echo`` and ``demo.add``."""

from pydantic import BaseModel, Field

from channelbus import Message, incoming


class EchoSchema(BaseModel):
    """Payload of ``demo.echo``."""

    text: str = Field(min_length=1, max_length=1000)


@incoming.register
class Echo(Message):
    """``demo.echo {"text"}`` replies with the same text."""

    name = "demo.echo"
    schema = EchoSchema

    async def handle(self):
        """Send the text back."""
        return {"text": self.data.text}


class AddSchema(BaseModel):
    """Payload of ``demo.add``."""

    a: int
    b: int


@incoming.register
class Add(Message):
    """``demo.add {"a", "b"}`` replies ``{"sum"}``."""

    name = "demo.add"
    schema = AddSchema

    async def handle(self):
        """Add the two numbers."""
        return {"sum": self.data.a + self.data.b}
