"""Micro-benchmark of parsing one ~200-byte incoming envelope (no server, no socket).

Compares ``channelbus.protocol.decode`` (orjson and hand-written checks) with
a pydantic ``TypeAdapter(Envelope).validate_json`` of an equivalent model (``t``
pattern and length, ``i`` 1..64 characters, ``p`` any JSON, extra keys
forbidden) and with the bare parsers ``json.loads`` and ``orjson.loads``, which
check nothing. The frame is a ``str``, as the ASGI server hands it over.

Run alone: ``.venv/bin/python bench/decode.py``.
"""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter

from channelbus.protocol import decode

FRAME = (
    '{"t":"chat.send","i":"8f14e45f-ceea-4b6a-9e2c-31b4c2d0a7e1","p":{"room":"lobby",'
    '"text":"hello world, this is a typical short chat message","mentions":["alice","bob"],'
    '"reply_to":12345,"draft":false}}'
)


class PydanticEnvelope(BaseModel):
    """The envelope rules of ``channelbus.protocol.decode``, as a pydantic model."""

    model_config = ConfigDict(extra="forbid")

    t: Annotated[str, StringConstraints(max_length=100, pattern=r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*$")]
    i: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    p: Any = None


_adapter = TypeAdapter(PydanticEnvelope)

CANDIDATES: list[tuple[str, Callable[[str], Any]]] = [
    ("channelbus.protocol.decode (orjson + checks)", decode),
    ("pydantic TypeAdapter(Envelope).validate_json", _adapter.validate_json),
    ("json.loads (stdlib, no checks)", json.loads),
    ("orjson.loads (no checks)", orjson.loads),
]


def _check() -> None:
    """All candidates read the same frame the same way."""
    env = decode(FRAME)
    model = _adapter.validate_json(FRAME)
    assert (
        (env.t, env.i, env.p)
        == (model.t, model.i, model.p)
        == (lambda d: (d["t"], d["i"], d["p"]))(json.loads(FRAME))
    )


def time_call(func: Callable[[str], Any], repeat: int = 7, round_seconds: float = 0.1) -> float:
    """Best time of one call of ``func(FRAME)`` over ``repeat`` rounds of about ``round_seconds``, in µs."""
    timer = timeit.Timer("func(frame)", globals={"func": func, "frame": FRAME})
    estimate = timer.timeit(10_000) / 10_000
    number = max(10_000, int(round_seconds / estimate))
    return min(timer.repeat(repeat, number)) / number * 1e6


def run() -> list[tuple[str, float]]:
    """Time every candidate: ``(label, µs per call)``."""
    _check()
    return [(label, time_call(func)) for label, func in CANDIDATES]


def render(rows: list[tuple[str, float]]) -> str:
    """The results as a Markdown table, with the ratio to ``channelbus.protocol.decode``."""
    base = rows[0][1]
    width = max(len(label) for label, _ in rows)
    lines = [
        f"Parsing one {len(FRAME.encode())}-byte envelope (str), best of 7 rounds:",
        "",
        f"| {'parser':<{width}} | µs/call | vs channelbus |",
        f"|{'-' * (width + 2)}|--------:|--------------:|",
    ]
    lines += [f"| {label:<{width}} | {us:7.2f} | {us / base:12.2f}x |" for label, us in rows]
    return "\n".join(lines)


def main() -> None:
    """Print the decoder table."""
    print(render(run()))


if __name__ == "__main__":
    main()
