"""Fuzzing: hostile frames through the real ASGI stack; every frame the server sends checked by the contract.

The demo is served by ``manage.py runbus`` (uvicorn, the embedded job worker) with ``bench/fuzz_site``'s
settings (no rate limit), and several signed-in sockets send it frames made by a seeded generator:
random text and bytes, random JSON, envelopes with hostile keys, and valid envelopes with hostile payloads
for every registered incoming type (wrong types, missing and extra fields, huge numbers, ``NaN`` and
``Infinity`` literals, deep nesting, NUL, right-to-left marks, 4-byte characters, escaped lone surrogates,
strings near ``MAX_FRAME_BYTES``), and binary frames. Reported:

* crashes: tracebacks and ERROR lines in the server's log, the server dying, a socket closed unexpectedly;
* replies outside the contract (``docs/protocol.md``): not an envelope, unknown ``t``, a state that is not
  one of ``a q r s f``, an error frame without its documented fields, a frame for an ``i`` that was never
  sent or that had its terminal frame already;
* frames that got no terminal reply where one was due: every frame with a readable, valid ``i`` gets
  exactly one (``s`` or an ``error.*`` with ``f``); ``q`` and ``r`` may come before it;
* the server's RSS when the sockets opened, its peak, and after they closed; its log's size.

Frame ``k`` of a run is made from ``random.Random(f"{seed}:{k}")`` alone, so ``--show K --seed S`` prints
it again and ``--replay K --seed S`` sends it alone to a fresh server.

Usage: ``.venv/bin/python bench/fuzz.py [--frames 1000000] [--seconds S] [--sockets 6] [--seed S]
[--window 16] [--json]``. ``tests/system/test_fuzz.py`` runs the same code for about 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from servers import Server, ServerKind  # noqa: E402

SETTINGS = "fuzz_site.settings"
SUBPROTOCOL = "channelbus.v1"
TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*\Z")
STATES = frozenset("aqrsf")
ENVELOPE_KEYS = ("t", "i", "p", "s", "c", "n", "e")
#: The ASGI server's own frame limit under runbus (``max(2 x MAX_FRAME_BYTES, 1 MiB)``): not exceeded.
UVICORN_MAX = 1 << 20
#: Details every error frame of a type carries in ``p`` besides ``msg`` (``docs/protocol.md``, Errors).
ERROR_FIELDS: dict[str, tuple[str, ...]] = {
    "error.msg_type": ("type_name",),
    "error.validation": ("type_name", "errors"),
    "error.unauthorized": ("type_name",),
    "error.subscribe": ("topic",),
    "error.rate_limited": ("retry_after",),
    "error.too_large": ("limit",),
    "error.job": ("type_name", "attempts"),
}


def fuzz_server_kind(settings: str = SETTINGS, extra: tuple[str, ...] = ()) -> ServerKind:
    """``manage.py runbus`` serving the demo with ``settings`` (``{port}`` is filled in by Server.start)."""
    argv = (sys.executable, str(ROOT / "demo" / "manage.py"), "runbus", f"--settings={settings}")
    return ServerKind("channelbus fuzz", (*argv, "--port", "{port}", "--log-level", "warning", *extra))


def manage(workdir: Path, *args: str, settings: str = SETTINGS) -> str:
    """Run ``demo/manage.py`` with ``settings`` and the database in ``workdir``; its output."""
    env = dict(os.environ)
    paths = [str(BENCH_DIR), str(ROOT / "demo"), str(ROOT)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [env.get("PYTHONPATH")])])
    env["DJANGO_SETTINGS_MODULE"] = settings
    env["BENCH_DB_DIR"] = str(workdir)
    command = [sys.executable, str(ROOT / "demo" / "manage.py"), *args, f"--settings={settings}"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


# ---------------------------------------------------------------------------------------------- the types


@dataclass
class Catalog:
    """What the server has registered (read in a process with its settings), and tokens to sign in."""

    incoming: dict[str, dict[str, Any]]
    outgoing: list[str]
    tokens: list[str]
    max_frame_bytes: int

    @classmethod
    def read(cls, workdir: Path, users: int, settings: str = SETTINGS) -> Catalog:
        """Migrate the database in ``workdir``, make ``users`` users, and describe the registries."""
        manage(workdir, "migrate", "--noinput", "-v0", settings=settings)
        data = manage(workdir, "shell", "-c", f"import fuzz; fuzz.describe({users})", settings=settings)
        return cls(**json.loads(data.strip().splitlines()[-1]))


def describe(users: int) -> None:
    """In ``manage.py shell`` with the server's settings: print the :class:`Catalog` as one JSON line."""
    from django.contrib.auth import get_user_model

    from channelbus.conf import settings
    from channelbus.messages import incoming, outgoing
    from channelbus.messages.schemas import adapter_for
    from channelbus.server.auth import connection_token

    types = {}
    for cls in incoming.classes():
        adapter = adapter_for(cls.schema)  # a Django form's or a DRF serializer's (docs/schema.md)
        if adapter is not None:
            schema = adapter.json_schema("validation")
        else:
            schema = cls.schema.model_json_schema() if cls.schema is not None else None
        types[cls.name] = {"schema": schema, "deferred": bool(cls.deferred)}
    model = get_user_model()
    tokens = []
    for _ in range(users):
        user = model.objects.create_user(username=f"fuzz-{random.getrandbits(48):012x}")
        tokens.append(connection_token(user))
    catalog = {
        "incoming": types,
        "outgoing": sorted(outgoing),
        "tokens": tokens,
        "max_frame_bytes": int(settings.MAX_FRAME_BYTES),
    }
    print(json.dumps(catalog))


# ------------------------------------------------------------------------------------------ making frames


class Raw(str):
    """JSON text written as it is. ``kind``: ``broken`` (no JSON parser reads it: ``NaN``), ``murky``
    (JSON's grammar allows it, parsers differ: ``1e999``, an escaped lone surrogate, deep nesting) or
    ``ok``."""

    kind = "ok"


class Broken(Raw):
    """Raw text that is not JSON."""

    kind = "broken"


class Murky(Raw):
    """Raw text that is JSON by its grammar, but that a parser may refuse."""

    kind = "murky"


def dumps(value: Any, marks: set[str]) -> str:
    """``value`` as JSON text; :class:`Raw` parts are written as they are, their kinds added to ``marks``."""
    if isinstance(value, Raw):
        marks.add(value.kind)
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{dumps(k, marks)}:{dumps(v, marks)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v, marks) for v in value) + "]"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # orjson refuses ints over 64 bits; JSON has no such limit
    return orjson.dumps(value).decode()


UNICODE_EDGES = [
    "\x00",
    "a\x00b",
    "\u202e",  # right-to-left override
    "abc\u202edef\u202c",
    "\u200f\u061c",  # right-to-left mark, Arabic letter mark
    "\U0001f600",  # 4 bytes in UTF-8
    "\U0010ffff",
    "\ufeff",
    "\ufffd\uffff",
    "e\u0301" * 5,  # combining accents
    "\u2028\u2029",
    "\x7f\x1b[31m",
    "\U0001d573\U0001d58a\U0001d591",  # mathematical letters that look like Latin ones
    "ǅ",
    "‮user:1",
]
LONE_SURROGATES = ['"\\ud800"', '"\\udfff"', '"a\\udc00b"', '"\\ud83d"', '"\\ude00\\ud83d"']
HUGE_NUMBERS = [
    "1e999",
    "-1e999",
    "1E400",
    "9" * 400,
    "-" + "9" * 400,
    "1e-999",
    "123456789012345678901234567890",
]
BIG_INTS = [2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**30]


def hostile(rng: random.Random, depth: int = 0) -> Any:
    """One hostile JSON value."""
    pick = rng.randrange(13)
    if pick == 0:
        return rng.choice([0, -1, 1, *BIG_INTS])
    if pick == 1:
        return rng.choice([0.5, -0.0, 1e308, 5e-324, -1.5e-10, rng.random() * 10 ** rng.randrange(-5, 20)])
    if pick == 2:
        return Broken(rng.choice(["NaN", "Infinity", "-Infinity", "nan", "+1", "01", "1.", ".5", "0x10"]))
    if pick == 3:
        return Murky(rng.choice(HUGE_NUMBERS))
    if pick == 4:
        return rng.choice([True, False, None])
    if pick in (5, 6):
        return hostile_string(rng)
    if pick == 7:
        return Murky(rng.choice(LONE_SURROGATES))
    if pick == 8:
        return nested(rng)
    if pick == 9 and depth < 3:
        return [hostile(rng, depth + 1) for _ in range(rng.randrange(4))]
    if pick == 10 and depth < 3:
        return {hostile_key(rng): hostile(rng, depth + 1) for _ in range(rng.randrange(4))}
    if pick == 11:
        return rng.choice(["", " ", "null", "true", "0", "{}", "[]", "<script>alert(1)</script>", "%s%n"])
    return rng.choice([[], {}, [None], {"": None}, {"__proto__": {}}, {"constructor": 1}])


def hostile_string(rng: random.Random) -> str:
    """A string with unicode edge cases, sometimes long."""
    parts = [rng.choice(UNICODE_EDGES) for _ in range(rng.randrange(1, 4))]
    text = "".join(parts)
    if rng.random() < 0.1:
        text *= rng.choice([100, 1000, 10_000])
    return text


def hostile_key(rng: random.Random) -> Any:
    """A key for a hostile object: a name, an edge case, or an escaped lone surrogate."""
    if rng.random() < 0.1:
        return Murky(rng.choice(LONE_SURROGATES))
    return rng.choice(["t", "i", "p", "s", "c", "n", "", "x", "__class__", *UNICODE_EDGES])


def nested(rng: random.Random) -> Raw:
    """Deeply nested arrays or objects (orjson reads 1024 levels; deeper is refused as not JSON)."""
    depth = rng.choice([10, 100, 500, 1000, 1024, 1025, 5000, 50_000])
    opening, closing = ("[", "]") if rng.random() < 0.5 else ('{"a":', "}")
    text = opening * depth + "1" + closing * depth
    return Murky(text) if depth > 200 else Raw(text)


def string_for(rng: random.Random, schema: dict[str, Any]) -> Any:
    """A string for a schema of type string: valid, just outside its bounds, or hostile."""
    low, high = schema.get("minLength", 0), schema.get("maxLength", 50)
    pattern = schema.get("pattern")
    pick = rng.random()
    if pattern and pick < 0.5:
        for candidate in ("lobby", "a", "x-1", "a" * 32, "a" * 33, "Lobby", "a b", "", "ü"):
            if re.search(pattern, candidate) is not None and rng.random() < 0.6:
                return candidate
    if pick < 0.6:
        length = rng.choice([low, high, max(low, 1), low - 1, high + 1])
        if length < 0:
            return ""
        fill = rng.choice(["x", "é", "\U0001f600", "\x00", "\u202e"])
        return (fill * length)[:length]
    return hostile(rng)


def integer_for(rng: random.Random, schema: dict[str, Any]) -> Any:
    """An integer for a schema: its lower bound (mostly: cheap jobs), upper bound, just outside, hostile."""
    low = schema.get("minimum")
    if "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"] + 1
    high = schema.get("maximum")
    pick = rng.random()
    if pick < 0.4:
        return low if low is not None else rng.choice([0, 1, 2])
    if pick < 0.45 and high is not None:
        return high
    if pick < 0.65:
        return rng.choice([v for v in (low, high) if v is not None] or [0]) + rng.choice([-1, 1])
    if pick < 0.75:
        return rng.choice([f"{low or 1}", 1.0, 1.5, True, None])
    return hostile(rng)


def value_for(rng: random.Random, schema: dict[str, Any]) -> Any:
    """A value for one property's JSON schema (pydantic's): valid, near its bounds, or hostile."""
    if "anyOf" in schema:
        schema = rng.choice(schema["anyOf"])
    kind = schema.get("type")
    if kind == "string":
        return string_for(rng, schema)
    if kind == "integer":
        return integer_for(rng, schema)
    if kind == "boolean":
        return rng.choice([True, False, "true", 1, 0, None, "yes"])
    if kind == "null":
        return None
    return hostile(rng)


def payload_for(rng: random.Random, schema: dict[str, Any] | None) -> tuple[bool, Any]:
    """``(present, p)``: a payload for a type's JSON schema, mostly an object with hostile fields."""
    pick = rng.random()
    if pick < 0.1:
        return True, hostile(rng)
    if schema is None or pick < 0.15:
        return rng.random() < 0.3, None if rng.random() < 0.7 else {}
    payload = {}
    for name, prop in schema.get("properties", {}).items():
        if rng.random() < 0.9:
            payload[name] = value_for(rng, prop)
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        payload[hostile_key(rng)] = hostile(rng)
    return True, payload


@dataclass
class Frame:
    """One frame to send: text or bytes, the ``i`` that must come back (if any), and why it was made.

    ``due``: True when a terminal reply with ``i`` is due, None when it may or may not be (the frame holds
    JSON that parsers differ on), False when no reply may carry an ``i``.
    """

    k: int
    kind: str
    data: str | bytes
    i: str | None
    due: bool | None
    #: The error type the reply must have, when the frame decides it (too large, not JSON, binary).
    expect: str | None = None

    def show(self, limit: int = 300) -> str:
        """The frame for a report: its number, kind and (cut) content."""
        text = repr(self.data)
        cut = f"... ({len(self.data)} {'bytes' if isinstance(self.data, bytes) else 'chars'})"
        return f"frame {self.k} ({self.kind}): {text[:limit]}{cut if len(text) > limit else ''}"


class FrameFactory:
    """Frame ``k`` of the run with ``seed``, made from ``random.Random(f"{seed}:{k}")`` alone."""

    KINDS = (
        ("typed", 55),
        ("envelope", 14),
        ("json", 8),
        ("text", 6),
        ("binary", 7),
        ("large", 1),
        ("ping", 9),
    )

    def __init__(self, seed: int, catalog: Catalog) -> None:
        self.seed = seed
        self.catalog = catalog
        self.names = sorted(catalog.incoming)
        # A valid deferred message is a job for the server's one worker thread: those types come a third
        # as often, so that the jobs keep pace with the frames.
        self.name_weights = [1 if catalog.incoming[name]["deferred"] else 3 for name in self.names]
        self.max_bytes = catalog.max_frame_bytes
        self._kinds = [kind for kind, _ in self.KINDS]
        self._weights = [weight for _, weight in self.KINDS]

    def __call__(self, k: int) -> Frame:
        """Make frame ``k``."""
        rng = random.Random(f"{self.seed}:{k}")
        kind = rng.choices(self._kinds, self._weights)[0]
        return getattr(self, f"_{kind}")(rng, k)

    def _trace_id(self, rng: random.Random, k: int) -> tuple[Any, str | None]:
        """``(value of i, the i that must come back)``: mostly a unique valid id, sometimes a bad one."""
        pick = rng.random()
        if pick < 0.82:
            suffix = rng.choice(["", "", "", *UNICODE_EDGES, "x" * 64])
            i = f"{k:x}.{suffix}"[:64]
            return i, (i if i.isprintable() else None)  # control characters: refused, no i back
        if pick < 0.9:
            return None, None
        bad = rng.choice(["", "y" * 65, 7, 1.5, True, [], {}, ["a"], None])
        return bad, None

    def _envelope_frame(
        self, rng: random.Random, k: int, kind: str, env: dict[Any, Any], i: str | None
    ) -> Frame:
        marks: set[str] = set()
        items = list(env.items())
        if rng.random() < 0.2:
            rng.shuffle(items)
        text = dumps(dict(items), marks)
        due: bool | None = i is not None
        if "broken" in marks:
            return Frame(k, kind, text, None, False, "error.bad_request")
        if "murky" in marks and due:
            due = None
        return self._sized(Frame(k, kind, text, i, due))

    def _sized(self, frame: Frame) -> Frame:
        assert isinstance(frame.data, str)
        if len(frame.data.encode("utf-8", "surrogatepass")) > self.max_bytes:
            frame.expect = "error.too_large"
        return frame

    def _typed(self, rng: random.Random, k: int) -> Frame:
        name = rng.choices(self.names, self.name_weights)[0]
        value, i = self._trace_id(rng, k)
        env: dict[Any, Any] = {"t": name}
        if value is not None or rng.random() < 0.05:
            env["i"] = value
        present, payload = payload_for(rng, self.catalog.incoming[name]["schema"])
        if present:
            env["p"] = payload
        return self._envelope_frame(rng, k, "typed", env, i)

    def _ping(self, rng: random.Random, k: int) -> Frame:
        value, i = self._trace_id(rng, k)
        env: dict[Any, Any] = {"t": rng.choice(["s.ping", "topic.list", "topic.subscribe", "topic.leave"])}
        if value is not None:
            env["i"] = value
        if env["t"].startswith("topic.s") or env["t"] == "topic.leave":
            env["p"] = {"topic": self._topic(rng)}
        return self._envelope_frame(rng, k, "ping", env, i)

    def _topic(self, rng: random.Random) -> Any:
        pick = rng.random()
        if pick < 0.5:
            key = rng.choice(["lobby", "a", "x" * 32, "x" * 33, "", "UP", "ü", " lobby", "lobby ", "a:b"])
            return f"chat.room:{key}"
        if pick < 0.7:
            return rng.choice(
                ["broadcast", "user:1", "user:001", "user:-1", "user:999999999999999999999", "demo.all"]
            )
        if pick < 0.8:
            return rng.choice(
                ["board.card", "board.card:1", "board.card:x", "nope", "nope:1", ":", "a" * 201]
            )
        return hostile(rng)

    def _envelope(self, rng: random.Random, k: int) -> Frame:
        value, i = self._trace_id(rng, k)
        env: dict[Any, Any] = {}
        pick = rng.randrange(5)
        if pick != 0:
            env["t"] = rng.choice(
                [
                    "",
                    "A",
                    "demo.Echo",
                    "demo..echo",
                    ".demo",
                    "demo.",
                    "x" * 101,
                    "a" * 100,
                    "é",
                    7,
                    None,
                    ["demo.echo"],
                    "error.validation",
                    "s.closing",
                    "s.pong",
                    "topic.subscribed",
                    "demo.echo ",
                    "1demo",
                ]
            )
        if value is not None:
            env["i"] = value
        if pick in (2, 3):
            env[rng.choice(["s", "c", "n", "x", "T", "", "\x00"])] = hostile(rng)
        if pick in (3, 4) or rng.random() < 0.3:
            env["p"] = hostile(rng)
        return self._envelope_frame(rng, k, "envelope", env, i)

    def _json(self, rng: random.Random, k: int) -> Frame:
        value = hostile(rng)
        i = None
        if isinstance(value, dict) and "i" in value:  # an object's i must be one this frame alone has
            value["i"] = i = f"{k:x}.json"
        marks: set[str] = set()
        text = dumps(value, marks)
        if "broken" in marks or not text.startswith("{"):
            return Frame(k, "json", text, None, False, "error.bad_request")
        return self._sized(Frame(k, "json", text, i, None if "murky" in marks else i is not None))

    def _text(self, rng: random.Random, k: int) -> Frame:
        pick = rng.randrange(5)
        if pick == 0:
            text = "".join(
                chr(rng.choice([rng.randrange(32, 127), rng.randrange(0xA0, 0xD7FF)]))
                for _ in range(rng.randrange(60))
            )
        elif pick == 1:
            good = self._typed(rng, k).data
            assert isinstance(good, str)
            text = good[: rng.randrange(max(1, len(good)))]  # cut short
        elif pick == 2:
            text = rng.choice(
                ["", " ", "\n", "null", "[]", "\ufeff{}", '{"t":"s.ping"}garbage', "{'t':'s.ping'}"]
            )
        elif pick == 3:
            text = '{"t":"s.ping","i":"' + f"{k:x}" + '"' + rng.choice(["", ",", "}}", ",}"])
        else:
            text = rng.choice(UNICODE_EDGES) * rng.randrange(1, 200)
        return Frame(k, "text", text, None, False)

    def _binary(self, rng: random.Random, k: int) -> Frame:
        if rng.random() < 0.5:
            return Frame(k, "binary", rng.randbytes(rng.randrange(64)), None, False, "error.bad_request")
        frame = self._typed(rng, k)
        assert isinstance(frame.data, str)
        data = frame.data.encode("utf-8", "surrogatepass")
        due = frame.due if len(data) <= 4 * self.max_bytes else False
        return Frame(k, "binary", data, frame.i if due is not False else None, due, "error.bad_request")

    def _large(self, rng: random.Random, k: int) -> Frame:
        """A frame of MAX_FRAME_BYTES give or take a few bytes, or up to 1 MiB; 1- to 4-byte characters."""
        fill = rng.choice(["x", "é", "€", "\U0001f600"])
        size = len(fill.encode())
        target = rng.choice(
            [self.max_bytes + d for d in (-8, -3, -1, 0, 1, 2, 3, 8)] + [2 * self.max_bytes, UVICORN_MAX - 64]
        )
        i = f"{k:x}.large"
        head, tail = '{"t":"demo.echo","i":"' + i + '","p":{"text":"', '"}}'
        room = target - len(head) - len(tail)
        text = head + fill * (room // size) + "x" * (room % size) + tail
        return self._sized(Frame(k, "large", text, i, True))


# ---------------------------------------------------------------------------------------------- checking


@dataclass
class Problems:
    """What went wrong, with the frames that show it (the first few of each kind are kept)."""

    keep: int = 20
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, text: str) -> None:
        """Count a problem of ``kind``; keep ``text`` if it is among the first few."""
        self.counts[kind] += 1
        kept = self.examples.setdefault(kind, [])
        if len(kept) < self.keep:
            kept.append(text)

    def __bool__(self) -> bool:
        return bool(self.counts)


class Contract:
    """Checks one frame from the server against ``docs/protocol.md``; returns what is wrong with it."""

    def __init__(self, catalog: Catalog) -> None:
        self.incoming = catalog.incoming
        self.known = {*catalog.incoming, *catalog.outgoing, "s.closing"}
        self.deferred = {name for name, info in catalog.incoming.items() if info["deferred"]}

    def check(self, frame: Any) -> str | None:
        """None if ``frame`` (a decoded JSON value) is a valid envelope from the server, else why not."""
        if type(frame) is not dict:
            return "not a JSON object"
        keys = list(frame)
        if not set(keys) <= set(ENVELOPE_KEYS) or keys != sorted(keys, key=ENVELOPE_KEYS.index):
            return f"keys {keys}"
        if any(value is None for value in frame.values()):
            return "a null value (null keys are left out)"
        t, s = frame.get("t"), frame.get("s")
        if type(t) is not str or not TYPE_PATTERN.match(t) or len(t) > 100:
            return "bad t"
        if s is not None and s not in STATES:
            return f"unknown state {s!r}"
        if t.startswith("error."):
            return self._check_error(t, frame)
        if t not in self.known:
            return f"unknown type {t}"
        if s == "f":
            return "s=f on a type that is no error"
        if "i" in frame and s is None:
            return "a reply without a state"
        if s in ("q", "r") and t not in self.deferred:
            return f"state {s} for {t}, which is not deferred"
        if "c" in frame and ("i" in frame or type(frame["c"]) is not str):
            return "c with an i, or not a string"
        return None

    def _check_error(self, t: str, frame: dict[str, Any]) -> str | None:
        p = frame.get("p")
        if frame.get("s") != "f" or "c" in frame:
            return "an error without s=f, or with c"
        if type(p) is not dict or type(p.get("msg")) is not str or not p["msg"]:
            return "an error without p.msg"
        missing = [name for name in ERROR_FIELDS.get(t, ()) if name not in p]
        if missing:
            return f"{t} without {missing}"
        if "Traceback" in p["msg"] or 'File "' in p["msg"]:
            return "an error with server internals"
        if t == "error.validation":
            for error in p["errors"]:
                if type(error) is not dict or set(error) != {"loc", "msg", "type"}:
                    return f"a validation error entry {error!r} (no input echoed; loc, msg, type)"
        return None


class Ledger:
    """The frames of one socket whose ``i`` may come back, by ``i``, until their terminal reply.

    ``waiting``: due and not answered at all (the socket sends no more than its window of them);
    ``maybe``: frames whose ``i`` the server may or may not read; ``queued``: answered with ``q`` or
    ``r``, their terminal reply comes from a job worker.
    """

    def __init__(self) -> None:
        self.waiting: dict[str, tuple[Frame, float]] = {}
        self.maybe: dict[str, Frame] = {}
        self.queued: dict[str, Frame] = {}
        self.done: set[str] = set()
        self.given_up: set[str] = set()
        self.free = asyncio.Event()
        self.free.set()

    def expect(self, frame: Frame) -> None:
        """``frame`` was sent; a reply with its ``i`` is due (or may come)."""
        if frame.i is None or frame.due is False:
            return
        if frame.due:
            self.waiting[frame.i] = (frame, time.monotonic())
        else:
            self.maybe[frame.i] = frame

    def answer(self, i: str, state: str) -> Frame | str:
        """A frame with ``i`` and ``state`` arrived: the frame it answers, or why it answers none."""
        entry = self.waiting.pop(i, None)
        frame = entry[0] if entry is not None else self.maybe.pop(i, None) or self.queued.pop(i, None)
        if frame is None:
            if i in self.given_up:
                return "a reply after the socket gave up waiting for it"
            return "a frame after the terminal one" if i in self.done else "an i that was never sent as valid"
        if state in ("s", "f"):
            self.done.add(i)
        else:
            self.queued[i] = frame
        return frame

    def overdue(self, seconds: float) -> list[Frame]:
        """Take out the frames that have waited ``seconds`` for any reply (they are reported)."""
        since = time.monotonic() - seconds
        late = [i for i, (_, sent) in self.waiting.items() if sent < since]
        self.given_up.update(late)
        return [self.waiting.pop(i)[0] for i in late]

    def owed(self) -> list[Frame]:
        """The frames that still owe a terminal reply."""
        return [frame for frame, _ in self.waiting.values()] + list(self.queued.values())


# ---------------------------------------------------------------------------------------------- running


@dataclass
class Report:
    """What one run measured and found."""

    seed: int
    sockets: int
    frames: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    bytes_sent: int = 0
    received: int = 0
    replies: Counter[str] = field(default_factory=Counter)
    due: int = 0
    answered: int = 0
    maybe_answered: int = 0
    seconds: float = 0.0
    rss_start_kb: int = 0
    rss_peak_kb: int = 0
    rss_end_kb: int = 0
    log_bytes: int = 0
    log_lines: int = 0
    problems: Problems = field(default_factory=Problems)

    def summary(self) -> str:
        """The figures, then the problems with their frames."""
        rate = self.frames / self.seconds if self.seconds else 0.0
        lines = [
            f"seed {self.seed}: {self.frames:,} frames over {self.sockets} sockets in {self.seconds:.1f} s "
            f"({rate:,.0f}/s, {self.bytes_sent / 1e6:.1f} MB), {self.received:,} frames received",
            f"frames by kind: {dict(sorted(self.kinds.items()))}",
            f"replies by type and state: {dict(self.replies.most_common(25))}",
            f"terminal replies due: {self.due:,}, answered exactly once: {self.answered:,}; "
            f"frames whose i parsers may read or not, answered: {self.maybe_answered:,}",
            f"server RSS: {self.rss_start_kb / 1024:.1f} MB with the sockets open, peak "
            f"{self.rss_peak_kb / 1024:.1f} MB, {self.rss_end_kb / 1024:.1f} MB after they closed "
            f"({(self.rss_end_kb - self.rss_start_kb) / 1024:+.1f} MB)",
            f"server log: {self.log_bytes:,} bytes, {self.log_lines:,} lines",
            f"problems: {dict(self.problems.counts) or 'none'}",
        ]
        for kind, examples in self.problems.examples.items():
            lines.append(f"  {kind}:")
            lines.extend(f"    {example}" for example in examples)
        if self.problems:
            lines.append(f"  reproduce one: .venv/bin/python bench/fuzz.py --seed {self.seed} --replay K")
        return "\n".join(lines)


class FuzzSocket:
    """One signed-in socket that sends its share of the frames and checks every frame it receives."""

    def __init__(self, run: FuzzRun, number: int, token: str) -> None:
        self.run = run
        self.number = number
        self.token = token
        self.ledger = Ledger()
        self.recent: list[Frame] = []  # the last frames sent, for a report of an unexpected close
        self.closing = False

    async def connect(self) -> Any:
        """A WebSocket to the server, signed in with this socket's token."""
        from websockets.asyncio.client import connect

        return await connect(
            self.run.url,
            origin=self.run.origin,  # type: ignore[arg-type]
            additional_headers={"Authorization": f"Bearer {self.token}"},
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            compression=None,
            max_size=None,
            ping_interval=None,
            open_timeout=30,
            close_timeout=5,
        )

    async def drive(self, frames: Iterator[Frame]) -> None:
        """Send ``frames`` (reconnecting after an unexpected close), then wait for the replies due."""
        run = self.run
        websocket = await self.connect()
        reader = asyncio.ensure_future(self.read(websocket))
        for frame in frames:
            if reader.done():
                websocket, reader = await self.reconnect(reader)
            if frame.due:
                await self.wait_for_room(reader)
            self.ledger.expect(frame)
            self.recent = [*self.recent[-19:], frame]
            run.count_sent(frame)
            try:
                await websocket.send(frame.data)
            except Exception:
                continue  # the reader reports the close
        await self.finish(websocket, reader)

    async def wait_for_room(self, reader: asyncio.Future[None]) -> None:
        """Until fewer than the window's frames wait for a reply, and fewer for a job's terminal reply.

        Frames that wait too long for any reply are reported.
        """
        ledger = self.ledger
        while (
            len(ledger.waiting) >= self.run.window or len(ledger.queued) >= self.run.window
        ) and not reader.done():
            ledger.free.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ledger.free.wait(), 1)
            for frame in ledger.overdue(self.run.stall_seconds):
                self.run.report.problems.add(f"no reply within {self.run.stall_seconds:g} s", frame.show())

    async def reconnect(self, reader: asyncio.Future[None]) -> tuple[Any, asyncio.Future[None]]:
        """After an unexpected close: what was still waiting is lost; a new socket goes on."""
        for frame in self.ledger.owed():
            self.run.report.problems.add("no reply: the socket closed", frame.show())
        self.ledger = Ledger()
        websocket = await self.connect()
        return websocket, asyncio.ensure_future(self.read(websocket))

    async def finish(self, websocket: Any, reader: asyncio.Future[None]) -> None:
        """Wait (up to the run's deadline) for the replies still due, then close normally."""
        deadline = time.monotonic() + self.run.drain_seconds
        while self.ledger.owed() and time.monotonic() < deadline and not reader.done():
            self.ledger.free.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ledger.free.wait(), 0.5)
        for frame in self.ledger.owed():
            self.run.report.problems.add("no terminal reply by the end", frame.show())
        self.closing = True
        await websocket.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader, 10)

    async def read(self, websocket: Any) -> None:
        """Check every frame until the socket closes; an unexpected close is a problem."""
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in websocket:
                self.receive(message)
        except ConnectionClosed:
            pass
        if not self.closing:
            code = websocket.close_code
            recent = " | ".join(frame.show(120) for frame in self.recent[-3:])
            self.run.report.problems.add("socket closed unexpectedly", f"code {code}; last sent: {recent}")
        self.ledger.free.set()

    def receive(self, message: str | bytes) -> None:
        """Check one frame from the server and settle the frame it answers."""
        report = self.run.report
        report.received += 1
        if isinstance(message, bytes):
            report.problems.add("outside the contract", f"a binary frame: {message[:200]!r}")
            return
        try:
            frame = orjson.loads(message)
        except orjson.JSONDecodeError:
            report.problems.add("outside the contract", f"not JSON: {message[:200]!r}")
            return
        wrong = self.run.contract.check(frame)
        if wrong is not None:
            report.problems.add("outside the contract", f"{wrong}: {message[:300]}")
            return
        report.replies[f"{frame['t']} {frame.get('s', '-')}"] += 1
        if "i" in frame:
            self.settle(frame, message)

    def settle(self, frame: dict[str, Any], message: str) -> None:
        """A frame with an ``i``: it answers a frame sent on this socket, at most once terminally."""
        report = self.run.report
        state = frame["s"]
        terminal = state in ("s", "f")
        sent = self.ledger.answer(frame["i"], state)
        self.ledger.free.set()  # the sender and finish() look again
        if isinstance(sent, str):
            report.problems.add("outside the contract", f"{sent}: {message[:300]}")
            return
        if not terminal:
            return
        if sent.expect is not None and frame["t"] not in (sent.expect, "error.rate_limited"):
            report.problems.add("wrong error", f"{frame['t']} instead of {sent.expect}: {sent.show()}")
        if sent.due:
            report.answered += 1
        else:
            report.maybe_answered += 1


class FuzzRun:
    """One run: ``frames`` frames (or ``seconds``) over one socket per token, to the server at ``address``."""

    def __init__(
        self,
        address: str,
        catalog: Catalog,
        seed: int,
        window: int = 16,
        drain_seconds: float = 60,
        stall_seconds: float = 30,
    ) -> None:
        self.url = f"ws://{address}/ws/"
        self.origin = f"http://{address}"
        self.catalog = catalog
        self.contract = Contract(catalog)
        self.factory = FrameFactory(seed, catalog)
        self.window = window
        self.drain_seconds = drain_seconds
        #: A frame that got no reply at all in this long is reported, and the socket goes on.
        self.stall_seconds = stall_seconds
        self.report = Report(seed=seed, sockets=len(catalog.tokens))

    def count_sent(self, frame: Frame) -> None:
        """Count a frame as sent."""
        report = self.report
        report.frames += 1
        report.kinds[frame.kind] += 1
        report.bytes_sent += len(frame.data)
        if frame.due:
            report.due += 1

    def frames_of(self, socket: int, total: int, stop_at: float) -> Iterator[Frame]:
        """Socket ``socket``'s frames: numbers socket, socket + n, socket + 2n, ... below ``total``."""
        step = len(self.catalog.tokens)
        for k in range(socket, total, step):
            if time.monotonic() >= stop_at:
                return
            yield self.factory(k)

    async def run(self, frames: int, seconds: float = math.inf) -> Report:
        """Drive every socket to the end; the report's figures, RSS and log aside."""
        started = time.monotonic()
        stop_at = started + seconds
        sockets = [FuzzSocket(self, n, token) for n, token in enumerate(self.catalog.tokens)]
        await asyncio.gather(*(s.drive(self.frames_of(s.number, frames, stop_at)) for s in sockets))
        self.report.seconds = time.monotonic() - started
        return self.report


# ---------------------------------------------------------------------------------------------- the server


#: The failure the demo's ``demo.fail`` raises on purpose: logged with its traceback, and no problem.
EXPECTED_FAILURE = "demo.fail always fails"


def read_log(server: Server, report: Report) -> None:
    """The server log's size, and its tracebacks and ERROR lines as problems."""
    text = server.log.read_text(errors="replace")
    report.log_bytes = len(text.encode())
    report.log_lines = text.count("\n")
    for block in re.split(r"\n(?=\S)", text):
        if EXPECTED_FAILURE in block:
            continue
        if "Traceback" in block or re.search(r"\b(ERROR|CRITICAL)\b", block):
            report.problems.add("server log", block[:2000])


async def sample_rss(server: Server, report: Report, stop: asyncio.Event) -> None:
    """Keep the server's peak RSS in the report until ``stop`` is set."""
    while not stop.is_set():
        with contextlib.suppress(OSError, RuntimeError):
            report.rss_peak_kb = max(report.rss_peak_kb, server.rss_kb())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def fuzz(
    frames: int,
    seconds: float = math.inf,
    sockets: int = 6,
    seed: int | None = None,
    window: int = 16,
    settle: float = 5.0,
    drain_seconds: float = 60.0,
    workdir: Path | None = None,
) -> Report:
    """Start a fuzz server, run the frames through it, and report (the server is stopped at the end)."""
    seed = random.randrange(2**32) if seed is None else seed
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fuzz-")))
        catalog = Catalog.read(workdir, sockets)
        server = stack.enter_context(Server.start(fuzz_server_kind(), workdir))
        run = FuzzRun(f"127.0.0.1:{server.port}", catalog, seed, window, drain_seconds)
        report = run.report
        stop = asyncio.Event()
        sampler = asyncio.ensure_future(sample_rss(server, report, stop))
        await warm_up(run)
        report.rss_start_kb = server.rss_kb()
        await run.run(frames, seconds)
        await asyncio.sleep(settle)
        stop.set()
        await sampler
        if server.proc.poll() is not None:
            report.problems.add("server died", f"exit code {server.proc.returncode}")
        else:
            report.rss_end_kb = server.rss_kb()
        read_log(server, report)
    return report


async def warm_up(run: FuzzRun) -> None:
    """One ping on every socket's token, so that first-use imports and caches are in the start RSS."""
    for token in run.catalog.tokens:
        socket = FuzzSocket(run, -1, token)
        websocket = await socket.connect()
        await websocket.send('{"t":"s.ping","i":"warm"}')
        await websocket.recv()
        await websocket.close()


async def replay(seed: int, numbers: list[int]) -> None:
    """Send frames ``numbers`` of ``seed``'s run, one by one, to a fresh server; print the replies."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        catalog = Catalog.read(Path(tmp), 1)
        factory = FrameFactory(seed, catalog)
        with Server.start(fuzz_server_kind(), Path(tmp)) as server:
            run = FuzzRun(f"127.0.0.1:{server.port}", catalog, seed)
            websocket = await FuzzSocket(run, 0, catalog.tokens[0]).connect()
            for k in numbers:
                frame = factory(k)
                print(frame.show(2000))
                await websocket.send(frame.data)
                await websocket.send('{"t":"s.ping","i":"replay-barrier"}')
                while True:
                    reply = await asyncio.wait_for(websocket.recv(), 10)
                    if '"replay-barrier"' in reply:
                        break
                    print("  <-", reply[:2000])
            await websocket.close()
            await asyncio.sleep(0.5)
            print(server.log.read_text(errors="replace")[-5000:])


def main(argv: list[str] | None = None) -> int:
    """The command line; exit status 1 if the run found a problem."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=math.inf, help="stop sending after this long")
    parser.add_argument("--sockets", type=int, default=6)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--window", type=int, default=16, help="frames per socket waiting for their reply")
    parser.add_argument("--show", type=int, nargs="*", metavar="K", help="print frames K of --seed and stop")
    parser.add_argument("--replay", type=int, nargs="*", metavar="K", help="send frames K of --seed alone")
    parser.add_argument("--json", action="store_true", help="print the report as JSON too")
    args = parser.parse_args(argv)
    if (args.show or args.replay) and args.seed is None:
        parser.error("--show and --replay need --seed")
    if args.show:
        catalog = Catalog(incoming=_describe_here(), outgoing=[], tokens=[], max_frame_bytes=256 * 1024)
        for k in args.show:
            print(FrameFactory(args.seed, catalog)(k).show(10_000))
        return 0
    if args.replay:
        asyncio.run(replay(args.seed, args.replay))
        return 0
    report = asyncio.run(fuzz(args.frames, args.seconds, args.sockets, args.seed, args.window))
    print(report.summary())
    if args.json:
        print(
            json.dumps(
                {k: v for k, v in vars(report).items() if k != "problems"}
                | {"problems": dict(report.problems.counts)}
            )
        )
    return 1 if report.problems else 0


def _describe_here() -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        return Catalog.read(Path(tmp), 0).incoming


if __name__ == "__main__":
    sys.exit(main())
