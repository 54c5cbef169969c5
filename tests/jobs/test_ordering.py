"""Strict ordering state (channelbus/jobs/ordering.py) in Django's cache (locmem in tests/settings.py): whose
turn it is, which copy of a waiting job runs it, the delay of a parked job's next look, and waking."""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import cache
from django.test import override_settings

from channelbus.jobs import ordering
from channelbus.jobs.job import DeferredJob
from channelbus.jobs.ordering import (
    ORDER_POLL_MAX_SECONDS,
    ORDER_POLL_SECONDS,
    claim_run,
    finish,
    is_my_turn,
    order_key,
    park,
)

ADDRESS = "local|order-test"


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()
    yield
    cache.clear()


def waiting(seq, waited, address=ADDRESS):
    """A job at place ``seq`` that started waiting ``waited`` seconds ago."""
    return DeferredJob(
        type_name="test.strict_note",
        payload={"text": str(seq)},
        address=address,
        seq=seq,
        waiting_since=time.time() - waited,
    )


def test_order_key():
    assert order_key("local|a") == "channelbus:order:local|a"
    assert order_key("local|a", "parked:3") == "channelbus:order:local|a:parked:3"
    assert order_key("local|a") != order_key("local|b")


def test_the_first_place_is_always_its_turn():
    assert is_my_turn(ADDRESS, 1, None)
    assert not is_my_turn(ADDRESS, 2, None)


def test_a_place_is_its_turn_once_every_earlier_one_finished():
    finish(ADDRESS, 1)
    assert is_my_turn(ADDRESS, 2, None)
    assert not is_my_turn(ADDRESS, 3, None)
    finish(ADDRESS, 2)
    assert is_my_turn(ADDRESS, 3, None)
    assert is_my_turn(ADDRESS, 2, None)  # a late copy of an earlier place is not held back
    assert not is_my_turn("local|other", 2, None)  # each connection has its own places


def test_finish_never_goes_back():
    finish(ADDRESS, 5)
    finish(ADDRESS, 3)
    assert cache.get(order_key(ADDRESS)) == 5
    assert is_my_turn(ADDRESS, 6, None)


@override_settings(CHANNELBUS={"STRICT_ORDER_TIMEOUT": 10})
def test_a_job_that_waited_past_strict_order_timeout_goes_ahead_with_a_warning(caplog):
    assert not is_my_turn(ADDRESS, 3, time.time() - 9)
    with caplog.at_level(logging.WARNING, "channelbus"):
        assert is_my_turn(ADDRESS, 3, time.time() - 11)
    assert f"job 3 of {ADDRESS} waited too long for job 1; running it" in caplog.text


def test_claim_run_lets_one_copy_run_per_place_and_attempt():
    assert claim_run(ADDRESS, 2, 1)
    assert not claim_run(ADDRESS, 2, 1)
    assert claim_run(ADDRESS, 2, 2)  # a retry is a new run
    assert claim_run(ADDRESS, 3, 1)
    assert claim_run("local|other", 2, 1)


def test_of_copies_claiming_at_once_exactly_one_wins():
    start = threading.Barrier(8)

    def claim(_):
        start.wait(5)
        return claim_run(ADDRESS, 4, 1)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(claim, range(8)))
    assert results.count(True) == 1


def test_claim_run_takes_the_parked_entry_away():
    park(waiting(2, 0), "default", 0)
    assert cache.get(order_key(ADDRESS, "parked:2")) is not None
    assert claim_run(ADDRESS, 2, 1)
    assert cache.get(order_key(ADDRESS, "parked:2")) is None
    assert finish(ADDRESS, 1) is None  # nothing left to wake


def test_park_is_0_when_the_predecessor_already_finished():
    finish(ADDRESS, 1)
    assert park(waiting(2, 0), "default", 0) == 0


@pytest.mark.parametrize(
    ("waited", "delay"),
    [
        (0.0, ORDER_POLL_SECONDS),  # at least the first poll delay
        (1.5, 1.5),  # then as long as it waited so far
        (3.0, 3.0),
        (30.0, ORDER_POLL_MAX_SECONDS),  # capped
    ],
)
def test_park_delay_grows_with_the_wait_and_is_capped(waited, delay):
    assert park(waiting(2, waited), "default", 0) == pytest.approx(delay, abs=0.05)


@override_settings(CHANNELBUS={"STRICT_ORDER_TIMEOUT": 10})
def test_park_looks_again_just_after_strict_order_timeout():
    # 8 s waited of 10: the next look comes 2 s (and a bit) from now, not after the 5 s cap.
    assert park(waiting(2, 8), "default", 0) == pytest.approx(2 + ORDER_POLL_SECONDS / 4, abs=0.05)
    # Past the timeout, is_my_turn lets it go ahead; the cap applies.
    assert park(waiting(3, 12), "default", 0) == pytest.approx(ORDER_POLL_MAX_SECONDS, abs=0.05)


def test_finish_returns_the_parked_successor_once_and_removes_it():
    job = waiting(2, 0.5)
    park(job, "slow", 7)
    parked = finish(ADDRESS, 1)
    assert parked is not None
    data, queue_name, priority = parked
    assert (DeferredJob.from_json(data), queue_name, priority) == (job, "slow", 7)
    assert cache.get(order_key(ADDRESS, "parked:2")) is None
    assert finish(ADDRESS, 1) is None


def test_finish_wakes_only_the_next_place():
    park(waiting(3, 0), "default", 0)
    assert finish(ADDRESS, 1) is None  # place 2 is next, not 3
    assert cache.get(order_key(ADDRESS, "parked:3")) is not None
    parked = finish(ADDRESS, 2)
    assert parked is not None
    assert parked[0]["seq"] == 3


def test_park_keeps_the_job_for_longer_than_strict_order_timeout(monkeypatch):
    timeouts = []
    real_set = ordering.cache.set

    def spy(key, value, timeout=None, **kwargs):
        timeouts.append((key, timeout))
        return real_set(key, value, timeout, **kwargs)

    monkeypatch.setattr(ordering.cache, "set", spy)
    park(waiting(2, 0), "default", 0)
    [(key, timeout)] = timeouts
    assert key == order_key(ADDRESS, "parked:2")
    assert timeout > 60
