"""A deferred message's answers: its states, progress and result, sent to the connection that asked."""

from __future__ import annotations

from typing import Any

from ..messages import Message, repeats, reply_frame
from ..protocol import BusError, encode, error_frame, states
from ..publishing.sender import FrameSender

__all__ = ["Replier"]


class Replier:
    """Sends one job's frames to its connection, in the order they were made.

    Nothing is sent without an ``address`` (a job nobody waits for), and only errors without a
    ``trace_id`` (a message sent without ``i`` asked for no reply). It is the handler's
    :class:`~channelbus.messages.ProgressReporter`.

    With a ``repeat_key`` (the job's request is deduplicated), each frame is also kept in
    :mod:`channelbus.messages.repeats` before it is sent: a repeat of the request, from any
    connection, gets the states that follow and the terminal frame, also after its first
    connection has gone (the reply then has no receiver, but it is kept).
    """

    def __init__(
        self, address: str | None, trace_id: str | None, type_name: str, repeat_key: str | None = None
    ) -> None:
        self.address = address
        self.trace_id = trace_id
        self.type_name = type_name
        self.repeat_key = repeat_key
        self._sender = FrameSender(address) if address is not None else None

    def _send(self, text: str, done: bool = False) -> None:
        if self.repeat_key is not None:  # kept first: a repeat never misses a frame that was sent
            repeats.record(self.repeat_key, text, done)
        if self._sender is not None:  # the job's frames arrive in the order they were sent
            self._sender.send(text)

    def state(self, state: str, payload: Any = None) -> None:
        """Send the state ``state`` (``r`` when the handler starts), with an optional payload."""
        if self.trace_id is not None:
            self._send(encode(self.type_name, payload, i=self.trace_id, s=state))

    def progress(self, done: float, total: float | None, text: str | None) -> None:
        """Send ``r`` with ``{"done", "total", "text"}`` (``self.progress(...)`` in a handler)."""
        payload: dict[str, Any] = {"done": done}
        if total is not None:
            payload["total"] = total
        if text is not None:
            payload["text"] = text
        self.state(states.RUNNING, payload)

    def result(self, cls: type[Message], result: Any) -> None:
        """Send the handler's result as the ``s`` frame."""
        if self.trace_id is not None:
            self._send(reply_frame(cls, self.trace_id, result), done=True)

    def error(self, error: BusError) -> None:
        """Send ``error`` as an error frame answering the request.

        One that says "try again later" (:func:`~channelbus.messages.repeats.is_recorded`) is not
        kept: the request's entry is dropped, so a repeat runs it again.
        """
        if error.trace_id is None:
            error.trace_id = self.trace_id
        if self.repeat_key is not None and not repeats.is_recorded(error):
            repeats.forget(self.repeat_key)
            self.repeat_key = None
        self._send(error_frame(error), done=True)
