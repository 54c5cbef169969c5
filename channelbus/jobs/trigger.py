"""``trigger()``: run a server-side handler from Python code (a view, the shell, another job)."""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth.models import AnonymousUser

from ..messages import Message, Metadata, incoming
from .deferred import enqueue, run_deferred, user_pk
from .job import DeferredJob

__all__ = ["trigger"]


def trigger(
    cls: type[Message] | str,
    payload: Any = None,
    *,
    request: Any = None,
    user: Any = None,
    reply_to: str | None = None,
    trace_id: str | None = None,
) -> None:
    """Run a server-side handler from Python code, as df_websockets'
    ``trigger(..., to=[SERVER])``: deferred types go on the queue, others run now in this thread.

    ``request`` is a view's ``HttpRequest``: the handler sees its user. ``user`` is whom the
    handler sees otherwise (None: an anonymous user; it wins over ``request.user``). ``reply_to``
    is an optional connection address that gets the states and the result (with ``trace_id``).
    """
    if user is None and request is not None:
        user = getattr(request, "user", None)
    if isinstance(cls, str):
        found = incoming.get(cls)
        if found is None:
            raise LookupError(f"{cls!r} is not a registered incoming message type.")
        cls = found
    meta = Metadata(
        trace_id=trace_id,
        user=user if user is not None else AnonymousUser(),
        channel_name=reply_to,
        received_at=time.time(),
        registry=incoming,
    )
    if cls.deferred:
        cls.from_payload(payload, meta)  # fail here, in the caller, on a bad payload
        enqueue(cls, payload, meta)
        return
    job = DeferredJob(
        type_name=cls.name,
        payload=payload,
        trace_id=trace_id,
        user_pk=user_pk(user),
        address=reply_to,
        received_at=meta.received_at,
        registry=incoming.name,
    )
    run_deferred.call(job.to_json())
