"""MemoryHistory: numbering, epochs, the history's bounds and what a ``since`` recovers (no I/O)."""

from __future__ import annotations

import orjson
import pytest

from channelbus.transport.history import NUMBERING_TTL, SWEEP_INTERVAL, MemoryHistory, Recovery, numbered


def frame(text: str) -> str:
    return orjson.dumps({"t": "chat.message", "p": {"text": text}, "c": "room"}).decode()


def publish(history: MemoryHistory, count: int, *, size: int = 100, ttl: float = 120, now: float = 0.0):
    return [history.append("room", frame(str(k)), size, ttl, now) for k in range(count)]


def test_numbered_appends_n_as_the_last_key_of_the_same_text():
    text = frame("hi")
    assert numbered(text, 7, "ab12cd34") == text[:-1] + ',"n":7}'
    assert orjson.loads(numbered(text, 7)) == {**orjson.loads(text), "n": 7}


def test_the_first_frame_of_a_numbering_names_its_epoch():
    history = MemoryHistory()
    (_, text), (_, text2) = publish(history, 2)
    epoch = history.logs["room"].epoch
    assert orjson.loads(text) == {**orjson.loads(frame("0")), "n": 1, "e": epoch}
    assert "e" not in orjson.loads(text2)


def test_each_publish_gets_the_next_n_one_numbering_per_topic():
    history = MemoryHistory()
    assert [n for n, _ in publish(history, 3)] == [1, 2, 3]
    assert history.append("other", frame("x"), 0, 120, 0.0)[0] == 1
    assert history.read("room", None, 120, 1000, 0.0).n == 3


def test_a_first_subscribe_gets_position_zero_and_an_epoch_kept_by_the_next_publishes():
    history = MemoryHistory()
    first = history.read("room", None, 120, 1000, 0.0)
    assert (first.n, first.recovered, first.frames) == (0, None, ())
    assert len(first.epoch) == 8
    publish(history, 2)
    assert history.read("room", None, 120, 1000, 1.0) == Recovery(2, first.epoch)


def test_since_recovers_exactly_the_missed_frames_in_order():
    history = MemoryHistory()
    sent = publish(history, 10)
    epoch = history.read("room", None, 120, 1000, 0.0).epoch
    recovery = history.read("room", (4, epoch), 120, 1000, 0.0)
    assert recovery.recovered is True
    assert recovery.n == 10
    assert list(recovery.frames) == [text for _, text in sent[4:]]
    assert [orjson.loads(text)["n"] for text in recovery.frames] == [5, 6, 7, 8, 9, 10]


def test_nothing_missed_is_recovered_with_no_frames_even_without_history():
    history = MemoryHistory()
    publish(history, 3, size=0)
    epoch = history.read("room", None, 120, 1000, 0.0).epoch
    assert history.read("room", (3, epoch), 120, 1000, 0.0) == Recovery(3, epoch, True)
    assert history.read("room", (2, epoch), 120, 1000, 0.0) == Recovery(3, epoch, False)


@pytest.mark.parametrize(
    ("since", "why"),
    [
        ((5, "another"), "another epoch"),
        ((11, None), "ahead of the topic"),
        ((0, None), "older than the history (size 5)"),
    ],
)
def test_what_cannot_be_filled_exactly_is_not_recovered(since, why):
    history = MemoryHistory()
    publish(history, 10, size=5)
    epoch = history.read("room", None, 120, 1000, 0.0).epoch
    n, their_epoch = since
    recovery = history.read("room", (n, their_epoch or epoch), 120, 1000, 0.0)
    assert (recovery.recovered, recovery.frames, recovery.n, recovery.epoch) == (False, (), 10, epoch), why


def test_the_history_keeps_its_last_size_frames():
    history = MemoryHistory()
    publish(history, 10, size=5)
    epoch = history.logs["room"].epoch
    assert [entry[0] for entry in history.logs["room"].entries] == [6, 7, 8, 9, 10]
    assert history.read("room", (5, epoch), 120, 1000, 0.0).recovered is True
    assert history.read("room", (4, epoch), 120, 1000, 0.0).recovered is False


def test_a_gap_longer_than_the_replay_limit_is_not_recovered():
    history = MemoryHistory()
    publish(history, 50)
    epoch = history.logs["room"].epoch
    assert history.read("room", (30, epoch), 120, 20, 0.0).recovered is True
    assert history.read("room", (29, epoch), 120, 20, 0.0).recovered is False


def test_frames_older_than_the_ttl_are_never_replayed():
    history = MemoryHistory()
    publish(history, 3, ttl=60, now=0.0)
    history.append("room", frame("late"), 100, 60, 50.0)
    epoch = history.logs["room"].epoch
    assert history.read("room", (2, epoch), 60, 1000, 59.0).recovered is True
    assert history.read("room", (2, epoch), 60, 1000, 61.0).recovered is False  # n = 3 is 61 s old
    recovery = history.read("room", (3, epoch), 60, 1000, 61.0)
    assert recovery.recovered is True
    assert [orjson.loads(text)["p"]["text"] for text in recovery.frames] == ["late"]


def test_an_idle_topic_is_forgotten_and_its_numbering_restarts_with_a_new_epoch():
    history = MemoryHistory()
    publish(history, 3)
    old = history.logs["room"].epoch
    history.append("other", frame("x"), 0, 120, NUMBERING_TTL + 1)  # a publish sweeps the idle ones
    assert "room" not in history.logs
    recovery = history.read("room", (3, old), 120, 1000, NUMBERING_TTL + 2)
    assert recovery.recovered is False
    assert recovery.n == 0
    assert recovery.epoch != old


def test_turning_the_history_off_drops_what_was_kept():
    history = MemoryHistory()
    publish(history, 3)
    history.append("room", frame("x"), 0, 120, 0.0)
    assert not history.logs["room"].entries


def test_a_sweep_frees_the_frames_of_quiet_topics_once_they_are_older_than_their_ttl():
    history = MemoryHistory()
    publish(history, 5, ttl=30, now=0.0)
    history.append("other", frame("x"), 0, 120, 10.0)  # within the sweep interval: nothing swept
    assert len(history.logs["room"].entries) == 5
    history.append("other", frame("x"), 0, 120, SWEEP_INTERVAL + 1)
    assert not history.logs["room"].entries  # freed, though "room" had no publish since
    assert history.logs["room"].n == 5  # its numbering stays
