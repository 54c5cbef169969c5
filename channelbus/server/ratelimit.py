"""The per-connection message rate limit: a token bucket, pure and clock-driven."""

from __future__ import annotations

import time

__all__ = ["TokenBucket"]


class TokenBucket:
    """Messages-per-second limit: ``rate`` tokens per second, at most ``burst`` saved."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(max(burst, 1))
        self.tokens = self.burst
        self.last = time.monotonic()

    def take(self) -> float:
        """Take one token: returns 0.0 if allowed, else the seconds until one is available."""
        now = time.monotonic()
        tokens = self.tokens + (now - self.last) * self.rate
        self.last = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / self.rate
