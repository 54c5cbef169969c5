"""The transaction a deferred handler runs in (``atomic = True``), without holding SQLite's write lock
while it does not write.

SQLite has one writer at a time. With ``"transaction_mode": "IMMEDIATE"`` (the embedded default,
docs/deferred.md), ``transaction.atomic()`` sends ``BEGIN IMMEDIATE`` at once, which takes the write
lock when the block opens and keeps it until it ends: a job that runs for seconds without writing (it
computes, waits, reports progress) made every other write of the project wait, the server's sync
handlers included. :func:`job_atomic` opens the same block, but on SQLite in ``IMMEDIATE`` or
``EXCLUSIVE`` mode it sends the ``BEGIN`` only just before the first statement that is not a
``SELECT``; the reads before it run in autocommit, each seeing the latest commit (as under
PostgreSQL's default READ COMMITTED). From the first write on, the block is what ``atomic()`` always
was: one transaction, committed when the handler returns, rolled back when it raises, with
``on_commit`` callbacks (and so ``publish()``) after the commit.

Any other database, another mode, or a block opened inside a transaction already running (``trigger()``
from a caller's ``atomic``, a test's transaction) gets plain ``transaction.atomic()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction

__all__ = ["job_atomic"]

#: The SQLite transaction modes whose ``BEGIN`` takes the write lock at once.
LOCKING_MODES = frozenset({"IMMEDIATE", "EXCLUSIVE"})


@contextmanager
def job_atomic(using: str | None = None) -> Iterator[None]:
    """``transaction.atomic(using)`` that takes SQLite's write lock at the first write, not at the start."""
    connection = transaction.get_connection(using)
    mode = getattr(connection, "transaction_mode", None) if connection.vendor == "sqlite" else None
    if mode not in LOCKING_MODES or connection.in_atomic_block:
        with transaction.atomic(using=using):
            yield
        return
    with connection.execute_wrapper(_LazyBegin(f"BEGIN {mode}")), transaction.atomic(using=using):
        yield


class _LazyBegin:
    """An execute wrapper: holds back the block's ``BEGIN`` and sends it before the first write."""

    def __init__(self, begin: str) -> None:
        self.begin = begin
        self.state = "opening"  # then "pending" (BEGIN held back), then "begun"

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
    ) -> Any:
        if self.state == "opening":  # the block's first statement: its BEGIN, unless Django changed
            self.state = "pending" if sql == self.begin else "begun"
            if self.state == "pending":
                return None
        elif self.state == "pending" and sql.lstrip()[:6].upper() != "SELECT":
            connection = context["connection"]
            if not connection.connection.in_transaction:
                with connection.wrap_database_errors:
                    connection.connection.execute(self.begin)
            self.state = "begun"
        return execute(sql, params, many, context)
