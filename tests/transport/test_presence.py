"""MemoryPresence (the embedded default): members, one diff per topic per batch, v, reads with a limit."""

from __future__ import annotations

import pytest

from channelbus.transport import presence as presence_module
from channelbus.transport.presence import Diff, MemoryPresence

ALICE = {"name": "alice"}
BOB = {"name": "bob"}


def test_a_batch_gives_one_diff_per_topic_changed():
    store = MemoryPresence()
    start = store.read("room", None).v
    diffs = store.apply({"room": {"4": (2, ALICE), "9": (1, BOB)}, "hall": {"4": (1, ALICE)}})
    assert diffs == [
        Diff("room", {"4": {"info": ALICE, "conns": 2}, "9": {"info": BOB, "conns": 1}}, {}, 2, start + 1),
        Diff("hall", {"4": {"info": ALICE, "conns": 1}}, {}, 1, diffs[1].v),
    ]
    assert diffs[0].payload() == {
        "topic": "room",
        "joins": {"4": {"info": ALICE, "conns": 2}, "9": {"info": BOB, "conns": 1}},
        "leaves": {},
        "count": 2,
        "v": start + 1,
    }


def test_a_count_that_changed_is_a_join_a_count_of_zero_a_leave_and_no_change_no_diff():
    store = MemoryPresence()
    store.apply({"room": {"4": (2, ALICE), "9": (1, BOB)}})
    [fewer] = store.apply({"room": {"4": (1, None)}})
    assert (fewer.joins, fewer.leaves, fewer.count) == ({"4": {"info": ALICE, "conns": 1}}, {}, 2)
    [gone] = store.apply({"room": {"9": (0, None)}})
    assert (gone.joins, gone.leaves, gone.count, gone.v) == (
        {},
        {"9": {"info": BOB, "conns": 0}},
        1,
        fewer.v + 1,
    )
    assert store.apply({"room": {"4": (1, None), "12": (0, None)}}) == []


def test_a_read_is_a_copy_with_at_most_limit_members_and_the_keys_asked():
    store = MemoryPresence()
    store.apply({"room": {str(n): (1, {"name": f"u{n}"}) for n in range(10)}})
    state = store.read("room", 3, ["9"])
    assert (len(state.members), state.count) == (4, 10)
    assert state.members["9"] == {"info": {"name": "u9"}, "conns": 1}
    state.members["9"]["info"]["name"] = "changed"
    assert store.read("room", None).members["9"]["info"] == {"name": "u9"}


def test_an_idle_topic_is_forgotten_and_its_v_starts_again_above(monkeypatch):
    store = MemoryPresence()
    [joined] = store.apply({"room": {"4": (1, ALICE)}})
    [left] = store.apply({"room": {"4": (0, None)}})
    later = presence_module.IDLE_TTL + presence_module.SWEEP_INTERVAL + 1
    monotonic, wall = presence_module.time.monotonic() + later, presence_module.time.time() + later
    monkeypatch.setattr(presence_module.time, "monotonic", lambda: monotonic)
    monkeypatch.setattr(presence_module.time, "time", lambda: wall)
    store.apply({"other": {"4": (1, ALICE)}})  # a batch sweeps
    assert "room" not in store._topics  # the memory is freed
    assert store.read("room", None).v >= left.v  # started from the clock, which has moved on
    assert left.v == joined.v + 1


@pytest.mark.parametrize("limit", [None, 0, 1])
def test_an_empty_topic_reads_as_no_member(limit):
    state = MemoryPresence().read("room", limit)
    assert (state.members, state.count) == ({}, 0)
