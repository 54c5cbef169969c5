"""Presence in Redis (the distributed setup): the members of each topic over every server process.

Kept beside the channel layer (its hosts; a topic's keys live on the host the same consistent hash
as the history picks). With ``B = <prefix>:channelbus.p`` and ``d`` the topic's digest:

* ``B:{d}:t`` a hash: member key -> connections over every process (the total);
* ``B:{d}:i`` a hash: member key -> info (JSON);
* ``B:{d}:v`` the topic's ``v``; kept :data:`~channelbus.transport.presence.IDLE_TTL` after its last
  member left, so the next one goes on from it;
* ``B:{d}:c:<process>`` a hash: member key -> that process's connections;
* ``B:proc:<process>`` a set of ``"<d> <topic>"``: the topics where the process has members;
* ``B:procs`` a sorted set: process -> the time (ms) after which it counts as dead.

Each process calls :data:`APPLY` once per host per batch: one round trip that renews its own entry in
``B:procs`` (the heartbeat), writes its counts (absolute, so a retry is harmless), and **sweeps** one
process found dead: its counts are taken off the totals, and its members who have no connection left
elsewhere leave. The script answers with the diffs of every topic it changed, which the caller
publishes. A process that finds its own entry gone (taken for dead during a long stall, or Redis lost
its keys) is answered ``resync`` and writes all its counts again. Nothing is written per member per
tick: a quiet process renews its entry every third of ``PRESENCE_EXPIRY``, one write per host.

The keys of one call span several topics, so they are named inside the script: one Redis server per
host, as channels_redis uses them, not a Redis Cluster.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection
from typing import Any

import orjson

from .history_redis import run_script
from .presence import IDLE_TTL, Batch, Diff, Snapshot

__all__ = ["APPLY", "READ", "RedisPresence"]

#: ARGV: base, process, ms it may stay silent, known ('1': it wrote before), retire ('1': take its entry
#: away if it has no member left), idle ttl ms, changes (JSON: [[topic, digest, [[key, count, info]...]]...]).
#: Returns 'resync', or the diffs as JSON: [[topic, v, count, {key: [conns, info]}, {key: info}]...].
APPLY = """
local base, proc = ARGV[1], ARGV[2]
local procs = base .. ':procs'
if ARGV[4] == '1' and not redis.call('ZSCORE', procs, proc) then return 'resync' end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local idle = tonumber(ARGV[6])
redis.call('ZADD', procs, now + tonumber(ARGV[3]), proc)
local touched, order = {}, {}
local function change(topic, d, p, key, count, info)
  local tag = base .. ':{' .. d .. '}'
  local tk, ik, ck = tag .. ':t', tag .. ':i', tag .. ':c:' .. p
  local old = tonumber(redis.call('HGET', ck, key) or '0')
  if count > 0 then redis.call('HSET', ck, key, count) elseif old > 0 then redis.call('HDEL', ck, key) end
  local total = tonumber(redis.call('HGET', tk, key) or '0')
  local new = total + count - old
  local diff = touched[topic]
  if not diff then
    diff = {d = d, joins = {}, leaves = {}, changed = false}
    touched[topic] = diff
    order[#order + 1] = topic
  end
  if new <= 0 then
    if total > 0 then
      diff.leaves[key] = redis.call('HGET', ik, key) or '{}'
      diff.joins[key] = nil
      diff.changed = true
      redis.call('HDEL', tk, key)
      redis.call('HDEL', ik, key)
    end
    return
  end
  local was = redis.call('HGET', ik, key)
  local new_info = info ~= '' and info ~= was
  if new_info then redis.call('HSET', ik, key, info); was = info end
  if new ~= total then redis.call('HSET', tk, key, new) end
  if new ~= total or new_info then
    diff.joins[key] = {new, was or '{}'}
    diff.leaves[key] = nil
    diff.changed = true
  end
end
local function place(p, topic, d)
  local ck = base .. ':{' .. d .. '}:c:' .. p
  local member = d .. ' ' .. topic
  if redis.call('EXISTS', ck) == 1 then
    redis.call('SADD', base .. ':proc:' .. p, member)
  else
    redis.call('SREM', base .. ':proc:' .. p, member)
  end
end
for _, item in ipairs(cjson.decode(ARGV[7])) do
  local topic, d = item[1], item[2]
  for _, e in ipairs(item[3]) do change(topic, d, proc, e[1], tonumber(e[2]), e[3]) end
  place(proc, topic, d)
end
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', procs, '-inf', now, 'LIMIT', 0, 1)) do
  local pk = base .. ':proc:' .. dead
  for _, member in ipairs(redis.call('SMEMBERS', pk)) do
    local space = string.find(member, ' ', 1, true)
    local d, topic = string.sub(member, 1, space - 1), string.sub(member, space + 1)
    local flat = redis.call('HGETALL', base .. ':{' .. d .. '}:c:' .. dead)
    for i = 1, #flat, 2 do change(topic, d, dead, flat[i], 0, '') end
  end
  redis.call('DEL', pk)
  redis.call('ZREM', procs, dead)
end
if ARGV[5] == '1' and redis.call('EXISTS', base .. ':proc:' .. proc) == 0 then
  redis.call('ZREM', procs, proc)
end
local out = {}
for _, topic in ipairs(order) do
  local diff = touched[topic]
  if diff.changed then
    local tag = base .. ':{' .. diff.d .. '}'
    local vk = tag .. ':v'
    local v
    if redis.call('EXISTS', vk) == 1 then
      v = redis.call('INCR', vk)
    else
      v = now
      redis.call('SET', vk, v)
    end
    local count = redis.call('HLEN', tag .. ':t')
    if count == 0 then redis.call('PEXPIRE', vk, idle) else redis.call('PERSIST', vk) end
    out[#out + 1] = {topic, v, count, diff.joins, diff.leaves}
  end
end
if #out == 0 then return '[]' end
return cjson.encode(out)
"""

#: KEYS: totals, infos, v. ARGV: limit (-1: all), idle ttl ms, keys to list besides.
#: Returns JSON: [count, v, {key: [conns, info]}]. Makes ``v`` when there is none yet.
READ = """
local count = redis.call('HLEN', KEYS[1])
local v = redis.call('GET', KEYS[3])
if not v then
  local t = redis.call('TIME')
  v = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('SET', KEYS[3], v, 'PX', ARGV[2])
end
local limit = tonumber(ARGV[1])
local members = {}
local function add(key, conns)
  members[key] = {tonumber(conns), redis.call('HGET', KEYS[2], key) or '{}'}
end
if count > 0 then
  if limit < 0 or count <= limit then
    local flat = redis.call('HGETALL', KEYS[1])
    for i = 1, #flat, 2 do add(flat[i], flat[i + 1]) end
  else  -- a big room: read about limit entries, not the whole hash, per subscribe
    local cursor, listed = '0', 0
    repeat
      local page = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', limit)
      cursor = page[1]
      for i = 1, #page[2], 2 do
        if listed < limit and not members[page[2][i]] then
          add(page[2][i], page[2][i + 1])
          listed = listed + 1
        end
      end
    until cursor == '0' or listed >= limit
  end
  for i = 3, #ARGV do
    local conns = redis.call('HGET', KEYS[1], ARGV[i])
    if conns then add(ARGV[i], conns) end
  end
end
return cjson.encode({count, tonumber(v), members})
"""


class RedisPresence:
    """Presence of topics in Redis, for the hub of one event loop (one process; on its loop)."""

    def __init__(self, hosts: list[dict[str, Any]], prefix: str, process: str) -> None:
        from channels_redis.utils import create_pool  # type: ignore[import-untyped]
        from redis import asyncio as aioredis

        self.base = f"{prefix}:channelbus.p"
        self.process = process
        self.clients = [aioredis.Redis(connection_pool=create_pool(host)) for host in hosts]
        self._apply = [client.register_script(APPLY) for client in self.clients]
        self._read = [client.register_script(READ) for client in self.clients]
        #: Hosts where this process has its entry (it wrote there, and has not retired).
        self.known: set[int] = set()
        #: monotonic time of the last call to each host.
        self._called = [0.0] * len(self.clients)

    def place(self, topic: str) -> tuple[int, str]:
        """The host index and the digest of ``topic`` (the history's choice, so both live on one host)."""
        digest = hashlib.blake2b(topic.encode(), digest_size=16).hexdigest()
        return int(digest[:8], 16) % len(self.clients), digest

    def heartbeat_due(self, every: float) -> bool:
        """True when some host has not heard from this process for ``every`` seconds."""
        now = time.monotonic()
        return any(now - called >= every for called in self._called)

    async def apply(
        self, batch: Batch, *, silent_ms: int, every: float, retire: bool = False
    ) -> tuple[list[Diff], set[int]]:
        """Write ``batch``: one call per host that has changes, or has not heard from this process for
        ``every`` seconds (its heartbeat), or all of them with ``retire`` (take this process's entry away
        where it has no member left). ``silent_ms``: how long this process may stay silent before others
        take it for dead.

        Returns the diffs of every topic changed (those of a dead process swept on the way included), and
        the hosts that had lost this process's entry: nothing was written there, and the caller writes
        all its counts of their topics again (this process is then new to them).
        """
        changes: dict[int, list[Any]] = {}
        for topic, members in batch.items():
            index, digest = self.place(topic)
            changes.setdefault(index, []).append([topic, digest, _entries(members)])
        now = time.monotonic()
        diffs: list[Diff] = []
        lost: set[int] = set()
        for index in range(len(self.clients)):
            if index not in changes and not retire and now - self._called[index] < every:
                continue
            reply = await self._call(index, changes.get(index, []), silent_ms, retire)
            if reply == b"resync":
                self.known.discard(index)
                lost.add(index)
                continue
            self._called[index] = now
            if retire:
                self.known.discard(index)
            else:
                self.known.add(index)
            diffs += _diffs(reply)
        return diffs, lost

    async def _call(self, index: int, changes: list[Any], silent_ms: int, retire: bool) -> Any:
        known = "1" if index in self.known else "0"
        args = [self.base, self.process, silent_ms, known, "1" if retire else "0", int(IDLE_TTL * 1000)]
        return await self._run(self._apply, index, [], [*args, orjson.dumps(changes)])

    async def read(self, topic: str, limit: int | None, also: Collection[str] = ()) -> Snapshot:
        """The members of ``topic``: at most ``limit`` (None: all), and those of ``also`` besides."""
        index, digest = self.place(topic)
        tag = f"{self.base}:{{{digest}}}"
        keys = [tag + ":t", tag + ":i", tag + ":v"]
        args = [-1 if limit is None else limit, int(IDLE_TTL * 1000), *also]
        count, v, members = orjson.loads(await self._run(self._read, index, keys, args))
        entries = {} if isinstance(members, list) else members  # cjson writes an empty table as []
        return Snapshot(
            {key: {"info": orjson.loads(info), "conns": conns} for key, (conns, info) in entries.items()},
            count,
            v,
        )

    async def _run(self, scripts: list[Any], index: int, keys: list[str], args: list[Any]) -> Any:
        """Run a script once; after a connection error (Redis restarted), once more on a new connection."""
        return await run_script(self.clients[index], scripts[index], keys, args)

    async def close(self) -> None:
        """Close the connections."""
        for client in self.clients:
            await client.aclose()


def _entries(members: dict[str, tuple[int, dict[str, Any] | None]]) -> list[list[Any]]:
    """``[[key, count, info JSON or ""]...]``: the changes of one topic, as the script reads them."""
    return [
        [key, count, orjson.dumps(info).decode() if info is not None else ""]
        for key, (count, info) in members.items()
    ]


def _diffs(reply: Any) -> list[Diff]:
    """The diffs of a reply of :data:`APPLY` (cjson writes an empty table as ``{}``: no entries)."""
    return [
        Diff(
            topic,
            {
                key: {"info": orjson.loads(info), "conns": conns}
                for key, (conns, info) in dict(joins or {}).items()
            },
            {key: {"info": orjson.loads(info), "conns": 0} for key, info in dict(leaves or {}).items()},
            count,
            v,
        )
        for topic, v, count, joins, leaves in orjson.loads(reply)
    ]
