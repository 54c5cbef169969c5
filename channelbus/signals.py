"""Async signals other apps hook into (Django signals sent with ``asend``).

Receivers may be ``async def`` (run on the event loop) or plain functions
(Django runs them in a thread). A signal without receivers costs nothing on
the per-frame path. Every signal is sent with ``sender`` = the consumer class
and ``connection`` = the consumer instance.

* ``connection_opened(connection)``: the socket was accepted.
* ``connection_closed(connection, code)``: the socket closed (``code`` may be None).
* ``message_received(connection, message)``: an incoming message was decoded
  and its type found, before permission and validation; ``message`` is the envelope.
* ``message_sent(connection, frame)``: a frame other than an error was sent (``frame`` is its text).
* ``error_sent(connection, error)``: an error frame was sent (``error`` is the :class:`BusError`).
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["connection_closed", "connection_opened", "error_sent", "message_received", "message_sent"]

connection_opened = Signal()
connection_closed = Signal()
message_received = Signal()
message_sent = Signal()
error_sent = Signal()
