"""What a deferred job carries: one named, versioned structure, :class:`DeferredJob`.

A job is queued as ``run_deferred(<job as JSON>)``, where the JSON is :meth:`DeferredJob.to_json`,
a dict with its format version in ``"v"``. The rules that let a worker of a later release run a
job queued by this one (a rolling upgrade, a job delayed across a deploy):

* a field is never renamed nor given another meaning; a new field gets a default, so a job
  without it reads as before;
* a reader ignores keys it does not know (a job queued by a newer release still runs);
* :data:`JOB_FORMAT` goes up only when a field changes meaning, and :meth:`DeferredJob.from_json`
  keeps reading every older format, including the positional arguments of channelbus 0.1
  (:meth:`DeferredJob.from_task_args`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["JOB_FORMAT", "DeferredJob"]

#: The format this release writes (the ``"v"`` of :meth:`DeferredJob.to_json`).
JOB_FORMAT = 1

# channelbus 0.1 queued run_deferred(type_name, payload, trace_id, user_pk, address, attempt,
# received_at, registry_name="incoming", seq=None, waiting_since=None): format 0.
_FORMAT_0 = (
    "type_name",
    "payload",
    "trace_id",
    "user_pk",
    "address",
    "attempt",
    "received_at",
    "registry",
    "seq",
    "waiting_since",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class DeferredJob:
    """One deferred message on its way to a worker.

    ``type_name`` and ``payload`` are the message as received (validated again in the worker);
    ``trace_id`` answers the request; ``user_pk`` is whom the handler sees (None: signed out);
    ``address`` the connection that gets the states and the result (None: nobody); ``attempt``
    counts from 1; ``received_at`` is a Unix time; ``registry`` the name of the registry the
    type is looked up in; ``seq`` its place among the strictly ordered messages of its
    connection (None when not strictly ordered) and ``waiting_since`` when it started waiting
    for its turn (None until it first had to wait). ``job_id`` names the job across its attempts
    (None in a job queued before it existed) and ``slots`` are the cache keys of the places it
    holds under the job caps (:mod:`channelbus.jobs.caps`), freed when it ends. ``process`` is
    the process that queued it (:data:`channelbus.jobs.liveness.PROCESS`; None before it existed).
    ``repeat_key`` is the request's entry in :mod:`channelbus.messages.repeats`, where its states and
    its terminal frame are kept for a repeat of its ``i`` (None: not kept, as in a job queued before
    it existed, by ``trigger()``, or for a request that is not deduplicated).
    """

    type_name: str
    payload: Any = None
    trace_id: str | None = None
    user_pk: str | None = None
    address: str | None = None
    attempt: int = 1
    received_at: float = 0.0
    registry: str = "incoming"
    seq: int | None = None
    waiting_since: float | None = None
    job_id: str | None = None
    slots: tuple[str, ...] = ()
    process: str | None = None
    repeat_key: str | None = None

    def __post_init__(self) -> None:
        slots: Any = self.slots
        if not isinstance(slots, tuple):  # a list, as JSON brings it back
            object.__setattr__(self, "slots", tuple(slots or ()))

    def to_json(self) -> dict[str, Any]:
        """The job as the JSON-ready dict that is queued (format :data:`JOB_FORMAT`)."""
        data = {"v": JOB_FORMAT, **dataclasses.asdict(self)}
        data["slots"] = list(self.slots)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeferredJob:
        """Read a queued job of any format; keys this release does not know are ignored."""
        if not isinstance(data, Mapping) or not isinstance(data.get("type_name"), str):
            raise ValueError(f"Not a channelbus deferred job: {data!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_task_args(cls, args: Sequence[Any]) -> DeferredJob:
        """The job from ``run_deferred``'s arguments: one dict, or channelbus 0.1's positional ones."""
        if len(args) == 1 and isinstance(args[0], Mapping):
            return cls.from_json(args[0])
        if not args or len(args) > len(_FORMAT_0):
            raise ValueError(f"Not a channelbus deferred job: {tuple(args)!r}")
        return cls.from_json(dict(zip(_FORMAT_0, args, strict=False)))

    def but(self, **changes: Any) -> DeferredJob:
        """A copy with ``changes`` (``job.but(attempt=2)``)."""
        return dataclasses.replace(self, **changes)
