"""Small SQL helpers behind the statement budgets (issue 13; docs/api-checkout.md "Statement budgets").

- ``is_postgresql()``: the one-statement paths (JSON aggregation, data-modifying CTEs, ``unnest``,
  advisory locks) are PostgreSQL's; the embedded demo database (SQLite) takes the plain ORM path
  with the same results and more statements.
- ``fetch_all()``: one raw statement, named (``%(name)s``) parameters, all rows.
- ``prefetched()``: hand a model instance the related rows a statement already returned, so
  ``instance.<related>.all()`` answers from memory (as after ``prefetch_related``) instead of
  reading them again.
- ``write_atomic()`` / ``request_transaction()``: a service's ``transaction.atomic()`` that joins,
  without a savepoint, the request transaction a caller (the ``Idempotency-Key`` middleware) opened
  for it; an error inside then rolls back the whole request transaction, which that caller expects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import connection, transaction
from django.db.models import Model

_joinable: ContextVar[bool] = ContextVar("common_db_request_transaction", default=False)


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def fetch_all(sql: str, params: Mapping[str, Any] | Sequence[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []


def prefetched(instance: Model, related_name: str, objects: Iterable[Model]) -> None:
    """Fill ``instance``'s prefetch cache for ``related_name`` with ``objects`` (no query)."""
    queryset = getattr(instance, related_name).all()  # lazy: no query
    queryset._result_cache = list(objects)
    queryset._prefetch_done = True
    cache = getattr(instance, "_prefetched_objects_cache", None)
    if cache is None:
        cache = instance._prefetched_objects_cache = {}  # type: ignore[attr-defined]  # Django's own attribute
    cache[related_name] = queryset


@contextmanager
def request_transaction() -> Iterator[None]:
    """Open the request's transaction; services' ``write_atomic()`` inside it add no savepoint."""
    with transaction.atomic():
        token = _joinable.set(True)
        try:
            yield
        finally:
            _joinable.reset(token)


def write_atomic() -> Any:
    """``transaction.atomic()`` for a service's writes: inside ``request_transaction()`` it joins
    that transaction (``savepoint=False``: no SAVEPOINT/RELEASE pair); anywhere else it is a
    plain atomic block."""
    joinable = _joinable.get() and connection.in_atomic_block
    return transaction.atomic(savepoint=not joinable)
