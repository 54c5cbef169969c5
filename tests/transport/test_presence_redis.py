"""RedisPresence against a real Redis: members over two processes, one write per batch, a dead process
swept by a live one, an entry lost and written again, retiring, reads with a limit."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from channelbus.transport.presence_redis import RedisPresence
from tests.redis_support import REDIS_URL, require_redis

ALICE = {"name": "alice"}
BOB = {"name": "bob"}


@pytest.fixture
async def stores():
    """Two RedisPresence on the shared Redis (two server processes), with a prefix of their own."""
    require_redis()
    prefix = f"cbtest{uuid.uuid4().hex[:8]}"
    made = [RedisPresence([{"address": REDIS_URL}], prefix, f"proc{n}") for n in range(2)]
    yield made
    for store in made:
        await store.close()
    client = aioredis.from_url(REDIS_URL)
    await client.eval(FORGET, 0, f"{prefix}:*")
    await client.aclose()


#: Delete every key of the test's prefix (ARGV[1]: the pattern).
FORGET = "for _, key in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', key) end"


async def write(store, batch, silent_ms=60_000, retire=False):
    diffs, lost = await store.apply(batch, silent_ms=silent_ms, every=0.0, retire=retire)
    assert lost == set()
    return diffs


async def test_one_user_on_two_processes_is_one_member_until_both_leave(stores):
    first, second = stores
    start = await first.read("room", None)
    assert (start.members, start.count) == ({}, 0)
    [joined] = await write(first, {"room": {"4": (1, ALICE)}})
    assert (joined.topic, joined.joins, joined.leaves, joined.count) == (
        "room",
        {"4": {"info": ALICE, "conns": 1}},
        {},
        1,
    )
    assert joined.v == start.v + 1
    [more] = await write(second, {"room": {"4": (2, ALICE), "9": (1, BOB)}})
    assert more.joins == {"4": {"info": ALICE, "conns": 3}, "9": {"info": BOB, "conns": 1}}
    assert (more.count, more.v) == (2, joined.v + 1)
    [fewer] = await write(first, {"room": {"4": (0, None)}})
    assert (fewer.joins, fewer.leaves) == ({"4": {"info": ALICE, "conns": 2}}, {})
    [gone] = await write(second, {"room": {"4": (0, None)}})
    assert (gone.joins, gone.leaves, gone.count) == ({}, {"4": {"info": ALICE, "conns": 0}}, 1)
    state = await first.read("room", None)
    assert (state.members, state.count, state.v) == ({"9": {"info": BOB, "conns": 1}}, 1, gone.v)


async def test_counts_are_absolute_so_writing_one_again_changes_nothing(stores):
    first, _ = stores
    await write(first, {"room": {"4": (2, ALICE)}})
    assert await write(first, {"room": {"4": (2, None)}}) == []
    assert (await first.read("room", None)).members == {"4": {"info": ALICE, "conns": 2}}


async def test_a_batch_is_one_round_trip_and_a_quiet_process_writes_only_its_heartbeat(stores):
    first, _ = stores
    client = aioredis.from_url(REDIS_URL)
    try:
        before = await commands(client)
        batch = {f"room{k}": {str(n): (1, {"name": f"u{n}"}) for n in range(50)} for k in range(10)}
        diffs = await write(first, batch)
        assert len(diffs) == 10
        assert await commands(client) - before == 1  # EVALSHA, whatever the number of members and topics
        assert first.heartbeat_due(0.0) is True
        assert first.heartbeat_due(3600.0) is False
        diffs, _ = await first.apply({}, silent_ms=60_000, every=3600.0)  # not due: nothing sent at all
        assert diffs == []
        assert await commands(client) - before == 1
    finally:
        await client.aclose()


async def commands(client) -> int:
    stats = await client.info("commandstats")
    return sum(
        int(value["calls"]) for name, value in stats.items() if name in ("cmdstat_evalsha", "cmdstat_eval")
    )


async def test_a_dead_process_is_swept_by_a_live_one_and_its_members_leave(stores):
    first, second = stores
    await write(first, {"room": {"4": (1, ALICE)}, "hall": {"4": (1, ALICE)}})
    await write(second, {"room": {"4": (1, ALICE), "9": (1, BOB)}}, silent_ms=100)
    await asyncio.sleep(0.2)  # second stays silent: its entry is older than 100 ms
    diffs = await write(first, {})  # first's heartbeat sweeps it
    assert [(d.topic, d.joins, d.leaves, d.count) for d in diffs] == [
        ("room", {"4": {"info": ALICE, "conns": 1}}, {"9": {"info": BOB, "conns": 0}}, 1)
    ]
    assert (await first.read("room", None)).members == {"4": {"info": ALICE, "conns": 1}}
    assert await write(first, {}) == []  # swept once


async def test_a_process_whose_entry_was_lost_writes_everything_again(stores):
    first, second = stores
    await write(first, {"room": {"4": (1, ALICE)}}, silent_ms=100)
    await asyncio.sleep(0.2)
    [swept] = await write(second, {})
    assert swept.leaves == {"4": {"info": ALICE, "conns": 0}}
    diffs, lost = await first.apply({"room": {"9": (1, BOB)}}, silent_ms=60_000, every=0.0)
    assert (diffs, lost) == ([], {0})  # nothing written: the caller sends all its counts again
    [back] = await write(first, {"room": {"4": (1, ALICE), "9": (1, BOB)}})
    assert back.joins == {"4": {"info": ALICE, "conns": 1}, "9": {"info": BOB, "conns": 1}}


async def test_a_retired_process_is_out_of_the_list_and_nobody_sweeps_it(stores):
    first, _ = stores
    await write(first, {"room": {"4": (1, ALICE)}})
    [left] = await write(first, {"room": {"4": (0, None)}}, retire=True)
    assert left.leaves == {"4": {"info": ALICE, "conns": 0}}
    client = aioredis.from_url(REDIS_URL)
    try:
        assert await client.zscore(f"{first.base}:procs", "proc0") is None
    finally:
        await client.aclose()
    assert first.known == set()
    [again] = await write(first, {"room": {"4": (1, ALICE)}})  # new to the host: no resync asked
    assert again.joins == {"4": {"info": ALICE, "conns": 1}}


@pytest.mark.parametrize("size", [10, 1000])  # a small hash is read whole, a big one in pages
async def test_a_read_lists_at_most_limit_members_and_the_keys_asked_besides(stores, size):
    first, _ = stores
    await write(first, {"room": {str(n): (1, {"name": f"u{n}"}) for n in range(size)}})
    state = await first.read("room", 3)
    assert (len(state.members), state.count) == (3, size)
    assert (len((await first.read("room", None)).members)) == size
    also = next(str(n) for n in range(size) if str(n) not in state.members)
    state = await first.read("room", 3, {also, "nobody"})
    assert len(state.members) == 4
    assert state.members[also] == {"info": {"name": f"u{also}"}, "conns": 1}


async def test_v_goes_on_after_the_topic_had_no_member(stores):
    first, _ = stores
    [joined] = await write(first, {"room": {"4": (1, ALICE)}})
    [left] = await write(first, {"room": {"4": (0, None)}})
    assert (await first.read("room", None)).v == left.v
    [again] = await write(first, {"room": {"4": (1, ALICE)}})
    assert (left.v, again.v) == (joined.v + 1, joined.v + 2)
