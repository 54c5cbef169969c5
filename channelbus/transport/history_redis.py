"""Topic numbering and history in Redis (the distributed setup): every process sees the same ``n``.

The same contract as :class:`~channelbus.transport.history.MemoryHistory`, kept
in Redis beside the channel layer (its hosts; a topic's keys live on one host,
picked by the same consistent hash channels_redis uses). Per topic, two keys
with one hash tag (so a cluster keeps them together):

* ``<prefix>:channelbus.h:{<digest>}:m`` a hash: ``e`` the epoch, ``n`` the last number.
  It expires :data:`~channelbus.transport.history.NUMBERING_TTL` seconds after the
  last publish or subscribe; when it is gone (expired, flushed, Redis restarted
  empty) the next publish starts a new numbering with a new epoch.
* ``<prefix>:channelbus.h:{<digest>}:l`` a list of the last ``history_size`` frames,
  each stored as ``"<published at, ms> <frame>"``; it expires ``history_ttl`` after
  the last publish, and a frame older than ``history_ttl`` is never replayed.

A publish is one ``EVALSHA`` (number, append, trim, expire, atomically): one round trip,
whatever the number of subscribers. A subscribe is one more. The epoch is made by the
caller (scripts have no good randomness) and used only when the numbering starts.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .history import NUMBERING_TTL, Recovery, new_epoch, numbered

__all__ = ["RedisHistory", "redis_hosts", "run_script"]

#: KEYS: meta, list. ARGV: frame without n, epoch if new, size, ttl ms, numbering ttl s.
#: Returns n, and the epoch when n is 1 (the frame then carries it: see ``numbered``).
APPEND = """
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[2]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'n', 0)
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('EXPIRE', KEYS[1], ARGV[5])
local tail = ',"n":' .. n .. '}'
if n == 1 then tail = ',"n":1,"e":"' .. epoch .. '"}' end
local size = tonumber(ARGV[3])
if size > 0 then
  local t = redis.call('TIME')
  local now = t[1] * 1000 + math.floor(t[2] / 1000)
  redis.call('RPUSH', KEYS[2], now .. ' ' .. string.sub(ARGV[1], 1, -2) .. tail)
  redis.call('LTRIM', KEYS[2], -size, -1)
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
else
  redis.call('DEL', KEYS[2])
end
if n == 1 then return {n, epoch} end
return {n}
"""

#: KEYS: meta, list. ARGV: since n ('' for none), since epoch, max frames, ttl ms, epoch if new,
#: numbering ttl s. Returns {n, epoch} without since, else {n, epoch, recovered (0/1), frames...}.
READ = """
local epoch = redis.call('HGET', KEYS[1], 'e')
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if not epoch then
  epoch = ARGV[5]
  n = 0
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'n', 0)
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
if ARGV[1] == '' then return {n, epoch} end
local after = tonumber(ARGV[1])
if ARGV[2] ~= epoch or after > n then return {n, epoch, 0} end
if after == n then return {n, epoch, 1} end
if n - after > tonumber(ARGV[3]) then return {n, epoch, 0} end
local len = redis.call('LLEN', KEYS[2])
local first = n - len + 1
if len == 0 or after + 1 < first then return {n, epoch, 0} end
local entries = redis.call('LRANGE', KEYS[2], after + 1 - first, -1)
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local oldest = tonumber(string.match(entries[1], '^(%d+) '))
if oldest < now - tonumber(ARGV[4]) then return {n, epoch, 0} end
local out = {n, epoch, 1}
for i, entry in ipairs(entries) do
  out[i + 3] = string.sub(entry, string.find(entry, ' ', 1, true) + 1)
end
return out
"""


def redis_hosts(layer: Any) -> list[dict[str, Any]] | None:
    """The Redis hosts of a channels_redis layer (core or pub/sub), as ``create_pool`` takes them."""
    hosts = getattr(layer, "hosts", None)  # RedisChannelLayer
    if isinstance(hosts, list) and hosts:
        return hosts
    shards = getattr(layer, "_shards", None)  # RedisPubSubChannelLayer
    if isinstance(shards, list) and shards and all(hasattr(shard, "host") for shard in shards):
        return [shard.host for shard in shards]
    return None


class RedisHistory:
    """Numbering and history of topics in Redis, for the hub of one event loop (on its loop)."""

    def __init__(self, hosts: list[dict[str, Any]], prefix: str = "asgi") -> None:
        from channels_redis.utils import create_pool  # type: ignore[import-untyped]
        from redis import asyncio as aioredis

        self.prefix = prefix
        self.clients = [aioredis.Redis(connection_pool=create_pool(host)) for host in hosts]
        self._append = [client.register_script(APPEND) for client in self.clients]
        self._read = [client.register_script(READ) for client in self.clients]

    def _place(self, topic: str) -> tuple[int, list[str]]:
        """The host index and the two keys of ``topic``."""
        digest = hashlib.blake2b(topic.encode(), digest_size=16).hexdigest()
        index = int(digest[:8], 16) % len(self.clients)
        base = f"{self.prefix}:channelbus.h:{{{digest}}}"
        return index, [base + ":m", base + ":l"]

    async def append(self, topic: str, text: str, size: int, ttl: float) -> tuple[int, str]:
        """Number one published frame of ``topic`` (kept if ``size`` > 0); returns ``n`` and the frame."""
        index, keys = self._place(topic)
        args = [text, new_epoch(), size, int(ttl * 1000), int(NUMBERING_TTL)]
        reply = await self._call(self._append, index, keys, args)
        n = int(reply[0])
        return n, numbered(text, n, _text(reply[1]) if n == 1 else "")

    async def read(self, topic: str, since: tuple[int, str] | None, ttl: float, max_frames: int) -> Recovery:
        """Where ``topic`` stands, and the frames after ``since = (n, epoch)`` if they are all kept."""
        index, keys = self._place(topic)
        after, epoch = since if since is not None else ("", "")
        args = [after, epoch, max_frames, int(ttl * 1000), new_epoch(), int(NUMBERING_TTL)]
        reply = await self._call(self._read, index, keys, args)
        n, their = int(reply[0]), _text(reply[1])
        if since is None:
            return Recovery(n, their)
        if not int(reply[2]):
            return Recovery(n, their, False)
        return Recovery(n, their, True, tuple(_text(frame) for frame in reply[3:]))

    async def _call(self, scripts: list[Any], index: int, keys: list[str], args: list[Any]) -> Any:
        return await run_script(self.clients[index], scripts[index], keys, args)

    async def close(self) -> None:
        """Close the connections."""
        for client in self.clients:
            await client.aclose()


async def run_script(client: Any, script: Any, keys: list[str], args: list[Any]) -> Any:
    """Run a registered script once; after a connection error (Redis restarted: the pooled connections are
    dead), once more on a new connection."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    try:
        return await script(keys=keys, args=args)
    except RedisConnectionError:
        await client.connection_pool.disconnect(inuse_connections=False)
        return await script(keys=keys, args=args)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
