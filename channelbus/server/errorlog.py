"""Client-error log lines of one connection, limited: the first few per interval, then one summary.

Every frame the server refuses could write a log line; a client that sends nothing but bad frames would
then fill the disk (one million hostile frames wrote 98 MB). :class:`ErrorLogLimiter` lets the first
``lines`` of each ``interval`` through and counts the rest, which one summary line reports:

    channelbus: 1234 more client errors on 3f9c0a1b2c4d5e6f in the last 60 s; last: error.validation ...

Pure and clock-driven like :class:`~channelbus.server.ratelimit.TokenBucket`: the caller passes the time
and writes the lines it gets back (``BusConsumer.send_error``).
"""

from __future__ import annotations

import math

__all__ = ["ErrorLogLimiter", "printable"]


def printable(text: object) -> str:
    """``text`` as it is if all its characters are printable, else its ``repr()``.

    A client chooses its ``i`` and the keys an error names: written as they are, a newline would forge
    a log line, and NUL, terminal escapes or a right-to-left override would hide or garble one.
    """
    value = str(text)
    return value if value.isprintable() else repr(value)


class ErrorLogLimiter:
    """At most ``lines`` client-error lines per ``interval`` seconds for the connection ``name``.

    An interval starts with the first error after the previous one ended. The lines over the limit are
    held back and counted; :meth:`summary` reports them in one line (call it when the interval ends,
    and when the connection closes), and :meth:`admit` does too when it finds the interval over.
    """

    __slots__ = ("_end", "_last", "_start", "_written", "held", "interval", "lines", "name")

    def __init__(self, name: str, lines: int, interval: float) -> None:
        self.name = name
        self.lines = lines
        self.interval = interval
        #: Lines held back since the last summary.
        self.held = 0
        self._start = self._end = -math.inf
        self._written = 0
        self._last = ""

    @property
    def interval_end(self) -> float:
        """When the current interval ends (the time to call :meth:`summary` at, once a line was held)."""
        return self._end

    def admit(self, now: float, line: str) -> list[str]:
        """The lines to write now for one error described by ``line``.

        That is ``[line]`` while the interval has room, ``[]`` once it is full (the line is counted),
        preceded by the summary of the last interval when that one ended with lines held back.
        """
        out: list[str] = []
        if now >= self._end:
            summary = self.summary(now)
            if summary is not None:
                out.append(summary)
            self._start, self._end, self._written = now, now + self.interval, 0
        if self._written < self.lines:
            self._written += 1
            out.append(line)
        else:
            self.held += 1
            self._last = line
        return out

    def summary(self, now: float) -> str | None:
        """One line for the lines held back since the last summary (None if none); resets the count."""
        if not self.held:
            return None
        seconds = max(1, math.ceil(min(now, self._end) - self._start))
        text = f"{self.held} more client errors on {self.name} in the last {seconds} s; last: {self._last}"
        self.held = 0
        return text
