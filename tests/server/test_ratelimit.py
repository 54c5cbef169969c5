"""TokenBucket (channelbus/server/ratelimit.py): the per-connection message rate limit, on a fake clock."""

import pytest

from channelbus.server import ratelimit
from channelbus.server.ratelimit import TokenBucket


class Clock:
    """time.monotonic for the bucket: moves only when told to."""

    def __init__(self):
        self.now = 1024.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(ratelimit.time, "monotonic", fake)
    return fake


def test_a_burst_then_refusal_with_the_wait_until_the_next_token(clock):
    bucket = TokenBucket(rate=10, burst=3)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.1)  # one token per 0.1 s
    assert bucket.take() == pytest.approx(0.1)  # a refusal costs nothing


def test_tokens_come_back_over_time(clock):
    # Times in binary fractions of a second, so that the sums are exact.
    bucket = TokenBucket(rate=4, burst=3)
    for _ in range(3):
        bucket.take()
    clock.now += 0.125
    assert bucket.take() == 0.125  # half a token so far
    clock.now += 0.125
    assert bucket.take() == 0.0
    assert bucket.take() == 0.25
    clock.now += 0.625
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.125]


def test_a_long_pause_saves_at_most_burst_tokens(clock):
    bucket = TokenBucket(rate=2, burst=4)
    clock.now += 3600
    assert [bucket.take() for _ in range(5)] == [0.0] * 4 + [pytest.approx(0.5)]


@pytest.mark.parametrize("burst", [0, -5, 1])
def test_burst_is_at_least_1(clock, burst):
    bucket = TokenBucket(rate=1, burst=burst)
    assert bucket.burst == 1.0
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(1.0)


def test_a_slow_rate_refuses_with_a_long_wait(clock):
    bucket = TokenBucket(rate=0.5, burst=1)
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(2.0)
    clock.now += 1.5
    assert bucket.take() == pytest.approx(0.5)
