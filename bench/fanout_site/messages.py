"""``bench.shout {"n", "t0"}`` in, published as ``bench.shouted {"n", "t0"}`` to ``bench.all``."""

from pydantic import BaseModel

from channelbus import Message, apublish, incoming, outgoing


class ShoutSchema(BaseModel):
    """Payload of ``bench.shout`` and ``bench.shouted``: the broadcast's number and send time."""

    n: int
    t0: float


@outgoing.register
class Shouted(Message):
    """``bench.shouted {"n", "t0"}``, published to ``bench.all``."""

    name = "bench.shouted"
    schema = ShoutSchema


@incoming.register
class Shout(Message):
    """``bench.shout {"n", "t0"}``: publish ``bench.shouted`` to every follower of ``bench.all``."""

    name = "bench.shout"
    schema = ShoutSchema

    async def handle(self):
        """Encode once, deliver to every local socket (and via the layer to other processes)."""
        await apublish(Shouted(n=self.data.n, t0=self.data.t0), to="bench.all")
