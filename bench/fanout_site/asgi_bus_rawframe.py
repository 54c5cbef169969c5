"""EXPERIMENT, not channelbus: ``asgi_bus`` with ``Hub.deliver`` patched to write one prebuilt frame.

Evidence for a possible channelbus change, measured by ``bench/fanout.py --cases busraw:memory``.
Under uvicorn's default WebSocket implementation (``websockets-sansio``) the server's frames are
not masked, so the bytes of a broadcast frame are the same for every socket. This patch builds
them once per broadcast and, for each socket served by ``WebSocketsSansIOProtocol`` that is open,
not paused by flow control and without a negotiated extension (no permessage-deflate), writes
them straight to its transport: no ASGI ``send`` coroutine, no per-socket ``str.encode``, no
per-socket framing by ``websockets``. Any other socket takes the normal ``push`` path.

It reaches into uvicorn's private attributes (``transport``, ``conn``, ``writable``,
``close_sent``) and ignores an ordering corner case (a send still waiting for ``writable`` could
be overtaken), so it is a measurement, not a proposal to ship as is.
"""

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import OPEN

from channelbus.fanout import ADDRESS_SEPARATOR, Hub
from fanout_site.asgi_bus import application

__all__ = ["application"]


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented server text frame."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


async def deliver(self, topic, text, exclude=None):
    """``Hub.deliver`` with the prebuilt-frame fast path."""
    subscribers = self.members.get(topic)
    if not subscribers:
        return
    excluded = exclude.rpartition(ADDRESS_SEPARATOR)[2] if exclude else None
    event = {"type": "websocket.send", "text": text}
    frame = text_frame(text.encode())
    for connection in tuple(subscribers):
        if connection.connection_id == excluded or connection.closed:
            continue
        proto = getattr(connection._send, "__self__", None)
        if (
            type(proto) is WebSocketsSansIOProtocol
            and proto.writable.is_set()
            and not proto.close_sent
            and proto.conn.state is OPEN
            and not proto.conn.extensions
        ):
            proto.transport.write(frame)
        else:
            await connection.push(event)


Hub.deliver = deliver
