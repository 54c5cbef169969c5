"""Raw frames: a published frame framed once and written to every uvicorn socket's transport.

Under uvicorn, most of a fan-out's cost per subscriber is the ASGI ``send``
(a coroutine, the ``websockets`` framing of the same text again, a copy) and
the kernel's write (``docs/performance-fanout.md``). A server's WebSocket
frames are not masked, so without a negotiated extension the bytes of a
published frame are the same for every socket: :func:`text_frame` builds
them once per publish and :meth:`RawSocket.write` hands them to each
socket's transport, which is what uvicorn's own ``send`` would do with them.

It is taken only where that is exactly equivalent to an ASGI ``send`` made
at that moment, and every other case goes through the normal ``send``:

* the socket is served by uvicorn's ``websockets-sansio`` implementation
  (``WebSocketsSansIOProtocol``, what ``--ws auto`` picks when ``websockets``
  is installed), exactly that class, and the consumer was handed its own
  bound ``send`` (no middleware wraps it) — decided once per connection by
  :func:`raw_socket`; other servers (daphne, hypercorn), uvicorn's
  ``websockets`` (legacy) and ``wsproto`` implementations, or anything that
  does not look as expected, get ``None``;
* no extension was negotiated (permessage-deflate compresses per socket);
* at the moment of writing (:meth:`RawSocket.write`): the connection is
  open (``OPEN``, no close sent or received, the transport not closing) and
  not paused by flow control (uvicorn's ``send`` would wait for
  ``writable``); and the consumer has no ``send`` of its own in progress on
  that socket (``BusConsumer.sending``, checked by the hub), so a raw frame
  never overtakes a frame that is waiting to be written.

uvicorn's ``send`` writes one whole frame with one ``transport.write`` and
does not wait when ``writable`` is set, so a raw write lands exactly where
such a ``send`` would: frames are never interleaved, and close handling,
keepalive pings and flow control stay uvicorn's. The setting
``CHANNELBUS["RAW_FRAMES"] = False`` turns it off.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

__all__ = ["RawSocket", "raw_socket", "text_frame"]

_HEAD_7 = struct.Struct("!BB")
_HEAD_16 = struct.Struct("!BBH")
_HEAD_64 = struct.Struct("!BBQ")
_FIN_TEXT = 0x81


def text_frame(text: str) -> bytes:
    """``text`` as one unmasked, unfragmented WebSocket text frame (a server's frame, RFC 6455 5.2)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        return _HEAD_7.pack(_FIN_TEXT, n) + payload
    if n < 65536:
        return _HEAD_16.pack(_FIN_TEXT, 126, n) + payload
    return _HEAD_64.pack(_FIN_TEXT, 127, n) + payload


class RawSocket:
    """One uvicorn ``websockets-sansio`` socket that may be written pre-built frames.

    ``conn`` is its ``websockets`` protocol object, ``transport`` its asyncio transport, ``writable``
    uvicorn's flow-control event and ``open`` websockets' ``OPEN`` state.
    """

    __slots__ = ("conn", "open", "transport", "writable")

    def __init__(self, protocol: Any, open_state: Any) -> None:
        self.conn = protocol.conn
        self.transport = protocol.transport
        self.writable = protocol.writable
        self.open = open_state

    def write(self, frame: bytes) -> bool:
        """Write ``frame`` now if a ``send`` would write it at once; False (nothing written) otherwise.

        The caller makes sure the connection has no ``send`` of its own in progress.
        ``Hub.deliver`` makes the same test inline (it runs once per subscriber). After the
        handshake, ``conn.state`` leaves ``OPEN`` whenever uvicorn sends or receives a close
        or fails the connection (keepalive timeout, protocol error).
        """
        if self.writable.is_set() and self.conn.state is self.open and not self.transport.is_closing():
            self.transport.write(frame)
            return True
        return False


_protocol_class: Any = None
_open_state: Any = None
_looked_up = False


def _uvicorn_sansio() -> tuple[Any, Any]:
    """uvicorn's ``WebSocketsSansIOProtocol`` and websockets' ``OPEN``, or ``(None, None)``."""
    global _protocol_class, _open_state, _looked_up
    if not _looked_up:
        _looked_up = True
        try:
            from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
            from websockets.protocol import OPEN
        except Exception:  # not installed, or moved: always the ASGI send
            return None, None
        _protocol_class, _open_state = WebSocketsSansIOProtocol, OPEN
    return _protocol_class, _open_state


def raw_socket(send: Any) -> RawSocket | None:
    """The :class:`RawSocket` behind an accepted connection's ASGI ``send``, or None to use ``send``.

    Call it after ``websocket.accept``: the extensions are known by then.
    """
    owner: Any = getattr(send, "__self__", None)
    protocol_class, open_state = _uvicorn_sansio()
    if (
        protocol_class is None
        or type(owner) is not protocol_class
        or getattr(send, "__func__", None) is not protocol_class.send
    ):
        return None
    try:
        conn = owner.conn
        if (
            conn.extensions
            or conn.state is not open_state
            or not isinstance(owner.writable, asyncio.Event)
            or owner.transport is None
            or owner.close_sent
            or owner.initial_response is not None
        ):
            return None
        return RawSocket(owner, open_state)
    except AttributeError:  # another uvicorn than the one this was written for
        return None
