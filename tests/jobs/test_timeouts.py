"""time_limit() and JobTimeout (channelbus/jobs/timeouts.py): no limit with None; SIGALRM in the main thread
cuts a blocking sleep short; a watchdog interrupts Python code in any other thread; a block that ends in
time leaves no alarm, no handler and no timer behind."""

import signal
import threading
import time

import pytest

from channelbus.jobs.timeouts import JobTimeout, time_limit


def alarm_left():
    """Seconds left on the real-time interval timer (pytest-timeout may run one of its own: 0 if none)."""
    return signal.getitimer(signal.ITIMER_REAL)[0]


def assert_outer_alarm_kept(before):
    """The timer is as it was before the block: off, or the outer one still running down."""
    after = alarm_left()
    if before == 0.0:
        assert after == 0.0
    else:
        assert 0 < after <= before


def timer_threads():
    return [t for t in threading.enumerate() if t.name == "channelbus-job-timeout" and t.is_alive()]


def wait_until(condition, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_job_timeout_is_a_base_exception_so_except_exception_does_not_swallow_it():
    assert issubclass(JobTimeout, BaseException)
    assert not issubclass(JobTimeout, Exception)
    with pytest.raises(JobTimeout), time_limit(0.05):
        try:
            time.sleep(5)
        except Exception:  # what a handler might write
            pytest.fail("JobTimeout was caught as an Exception")


def test_none_sets_no_limit():
    handler, before = signal.getsignal(signal.SIGALRM), alarm_left()
    with time_limit(None):
        assert_outer_alarm_kept(before)
        assert signal.getsignal(signal.SIGALRM) is handler
        assert timer_threads() == []
        result = "ran"
    assert result == "ran"


def test_in_the_main_thread_an_alarm_interrupts_a_sleep():
    assert threading.current_thread() is threading.main_thread()
    handler, before = signal.getsignal(signal.SIGALRM), alarm_left()
    started = time.monotonic()
    with pytest.raises(JobTimeout), time_limit(0.1):
        assert 0 < alarm_left() <= 0.1
        assert signal.getsignal(signal.SIGALRM) is not handler
        time.sleep(5)
    assert time.monotonic() - started < 4  # cut short, not slept out
    assert_outer_alarm_kept(before)
    assert signal.getsignal(signal.SIGALRM) is handler


def test_in_the_main_thread_a_block_that_ends_in_time_leaves_no_alarm():
    handler, before = signal.getsignal(signal.SIGALRM), alarm_left()
    with time_limit(5):
        value = sum(range(1000))
    assert value == 499500
    assert_outer_alarm_kept(before)
    assert signal.getsignal(signal.SIGALRM) is handler


def run_in_thread(target):
    """Run ``target`` in a new thread; return what it returned or raised (waiting at most 5 s)."""
    outcome = {}

    def run():
        try:
            outcome["returned"] = target()
        except BaseException as exc:
            outcome["raised"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "the thread was not interrupted"
    return outcome


def test_in_another_thread_a_watchdog_interrupts_a_busy_loop():
    def busy():
        deadline = time.monotonic() + 4  # ends by itself if the watchdog fails
        n = 0
        with time_limit(0.1):
            while time.monotonic() < deadline:
                n += 1
        return n

    handler, before = signal.getsignal(signal.SIGALRM), alarm_left()
    started = time.monotonic()
    outcome = run_in_thread(busy)
    assert isinstance(outcome.get("raised"), JobTimeout), outcome
    assert time.monotonic() - started < 3
    wait_until(lambda: timer_threads() == [])
    # No alarm: that is for the main thread only.
    assert signal.getsignal(signal.SIGALRM) is handler
    assert_outer_alarm_kept(before)


def test_in_another_thread_a_block_that_ends_in_time_is_not_interrupted_later():
    def quick():
        with time_limit(0.1):
            value = sum(range(1000))
        # Python code past the limit, after the block: a late watchdog would raise here.
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            pass
        return value

    assert run_in_thread(quick) == {"returned": 499500}
    wait_until(lambda: timer_threads() == [])
