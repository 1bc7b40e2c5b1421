"""``Idempotency-Key`` for every POST under ``/store`` (API.md, docs/idempotency.md).

A Django middleware, so it sees the raw body before DRF parses it and no view has to do
anything. Per request with a key:

1. validate the key (1-255 printable ASCII characters, else ``400 validation_error``);
2. resolve the scope from ``Authorization`` exactly as the API does (a customer id, ``guest``
   without a token; an invalid token skips the mechanism so the view answers 401);
3. ``INSERT ... ON CONFLICT DO NOTHING`` an in-flight record, committed at once (autocommit,
   no transaction is held while the view runs), so a concurrent retry sees it;
4. on a conflict: a different method/path/body is ``422 idempotency_key_reused``, a completed
   record is replayed (``Idempotent-Replayed: true``, the view does not run), an in-flight one
   is ``409 idempotency_key_in_use`` until ``IDEMPOTENCY_LOCK_TIMEOUT`` (a crashed request's
   record is then taken over), an expired one is reused as if new;
5. after the view: 2xx and 4xx responses are stored (except 409 and 429, which describe a
   passing condition), anything else (5xx, streaming) deletes the record so the client may retry.

``IDEMPOTENCY_LOCK_TIMEOUT`` follows the request timeout: it defaults to the longest a request
can run plus a margin (``WEB_REQUEST_TIMEOUT`` + ``IDEMPOTENCY_LOCK_MARGIN``, 60 + 5 s), so a request
that cannot still be running no longer blocks its retry. Database outage: if the record cannot be written before the view, the answer is
``503 service_unavailable`` with ``Retry-After`` (the view does not run); if it cannot be stored or
deleted after the view, the view's response is still returned and the record stays in flight until
``IDEMPOTENCY_LOCK_TIMEOUT``, when a retry takes it over.

Short writes in one transaction (PostgreSQL; ``TRANSACTIONAL_PATHS``: the cart writes, which make
no network call and hold the cart lock for milliseconds): steps 3-5 run inside the request's own
transaction, the one the view's service joins without a savepoint (``common.db.write_atomic``).
The claim is one statement that also takes a transaction-scoped advisory lock on the key
(``pg_try_advisory_xact_lock``, never waited for: a concurrent retry that cannot take it is
``409 idempotency_key_in_use`` at once), the response is stored by an UPDATE before COMMIT, and
the write and its record commit together or not at all: a crash can no longer leave a committed
write behind an in-flight record whose takeover would run the write twice. A 4xx from inside the
service rolls the transaction back; the answer is then stored on its own (one INSERT). If the
transaction cannot commit (database outage), the answer is ``503 service_unavailable`` (the write
did not happen, or its outcome is unknown: a retry with the same key replays it if it committed).
The uncommitted record blocks nobody: same-key requests never wait on it (the advisory lock).

Secrets in stored responses: a payment-session response carries the PaymentIntent's
``client_secret``, and its replay must hand the shopper that same secret (the browser needs it
to confirm), so the body is stored as answered. It is replayed only to the same scope (the
customer, or the guest holding the cart id) with the same key, and it is never displayed:
``IdempotencyRecord`` has no admin page, log lines name the scope, path and status only, and
records are purged after ``IDEMPOTENCY_KEY_TTL``. (The webhook inbox, which staff do see,
redacts client secrets instead: ``webhooks.services.payload_redact``.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, UnreadablePostError
from django.utils import timezone
from rest_framework import exceptions as drf_exceptions

from common import db
from common.errors import (
    DATABASE_ERRORS,
    ApplicationError,
    Conflict,
    Unprocessable,
    ValidationError,
    database_unavailable,
)
from common.models import IdempotencyRecord, IdempotencyStatus

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
GUEST_SCOPE = "guest"
METHODS = frozenset({"POST"})
PATH_PREFIX = "/store/"
# Responses that carry a secret we keep only as a digest are not stored (a retry issues another token).
NOT_STORED_PATHS = (re.compile(r"^/store/auth/token/?$"),)
# Conflicts and throttling describe a passing condition: a retry with the same key may succeed.
NOT_STORED_STATUSES = frozenset({409, 429})
# Short writes whose record is claimed and completed in the write's own transaction (PostgreSQL).
TRANSACTIONAL_PATHS = (
    re.compile(r"^/store/carts/?$"),
    re.compile(r"^/store/carts/[^/]+/?$"),
    re.compile(r"^/store/carts/[^/]+/line-items(/[^/]+)?/?$"),
    re.compile(r"^/store/carts/[^/]+/shipping-methods/?$"),
)
REPLAYED_RESPONSE_HEADERS = ("Content-Type", "Location", "WWW-Authenticate")
DEFAULT_LOCK_TIMEOUT = timedelta(seconds=65)  # settings.IDEMPOTENCY_LOCK_TIMEOUT's default

_KEY_RE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?")


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was already used with a different request."


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"
    default_message = "A request with this Idempotency-Key is still being processed. Retry later."


class _Skip(Exception):
    """The mechanism does not apply to this request (e.g. an invalid token: the view answers 401)."""


# --- key, scope, fingerprint -----------------------------------------------------------------


def idempotency_key_validate(*, raw: str) -> str:
    """1-255 printable ASCII characters, no leading or trailing space."""
    if not _KEY_RE.fullmatch(raw):
        raise ValidationError(
            f"{HEADER} must be 1-255 printable ASCII characters without leading or trailing spaces.", param=HEADER
        )
    return raw


def idempotency_scope_for(*, request: HttpRequest) -> str:
    """The customer id of a valid Bearer token, ``guest`` without one; ``_Skip`` for an invalid token.

    Uses the API's own authentication class (and so ``customers.selectors.user_for_token``),
    so the scope is the customer the view will see.
    """
    from customers.authentication import BearerTokenAuthentication  # common must not import customers at load

    try:
        result = BearerTokenAuthentication().authenticate(request)
    except drf_exceptions.AuthenticationFailed as exc:
        raise _Skip from exc
    if result is None:
        return GUEST_SCOPE
    return str(result[0].pk)


def request_fingerprint(*, body: bytes) -> str:
    """SHA-256 of the body's JSON in canonical form (keys sorted, no insignificant white space):
    a client that re-serialises the same JSON differently still sends "the same body". A body
    that is not JSON is fingerprinted byte for byte."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        data = canonical.encode()
    except (ValueError, RecursionError):  # not JSON (UnicodeDecodeError is a ValueError)
        data = body
    return hashlib.sha256(data).hexdigest()


# --- records ---------------------------------------------------------------------------------


def _lock_timeout() -> timedelta:
    return getattr(settings, "IDEMPOTENCY_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT)


_INSERT_FIELDS = (
    "scope",
    "key",
    "method",
    "path",
    "request_fingerprint",
    "status",
    "lock_token",
    "locked_at",
    "created_at",
    "expires_at",
)


_COMPLETED_FIELDS = (*_INSERT_FIELDS, "response_status", "response_body", "response_headers", "completed_at")


def advisory_lock_id(*, scope: str, key: str) -> int:
    """The 64-bit advisory lock id of one key of one scope (a signed bigint, as PostgreSQL wants)."""
    digest = hashlib.sha256(f"idempotency\x00{scope}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _insert_if_absent(
    *, record: IdempotencyRecord, fields_named: tuple[str, ...] = _INSERT_FIELDS, advisory_lock: bool = False
) -> bool:
    """One ``INSERT ... ON CONFLICT (scope, key) DO NOTHING RETURNING id`` (PostgreSQL and SQLite >= 3.35).

    A plain ``create()`` would need a savepoint and an IntegrityError (and a server-side ERROR
    log line) on every retry; this is one statement, committed immediately in autocommit.
    With ``advisory_lock`` (PostgreSQL, inside a transaction) the same statement first tries the
    key's transaction-scoped advisory lock and inserts nothing when another transaction holds it.
    """
    meta = IdempotencyRecord._meta
    by_name = {field.name: field for field in meta.concrete_fields}
    fields = [by_name[name] for name in fields_named]
    qn = connection.ops.quote_name
    pk_column = meta.pk.column if meta.pk is not None else "id"
    placeholders = ", ".join(["%s"] * len(fields))
    source = f"VALUES ({placeholders})"
    params = [f.get_db_prep_save(getattr(record, f.attname), connection) for f in fields]
    if advisory_lock:
        source = f"SELECT {placeholders} WHERE pg_try_advisory_xact_lock(%s)"
        params.append(advisory_lock_id(scope=record.scope, key=record.key))
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) {source} "
        f"ON CONFLICT ({qn('scope')}, {qn('key')}) DO NOTHING RETURNING {qn(pk_column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    record.pk = row[0]
    return True


@dataclass(frozen=True)
class Acquired:
    """This request owns the in-flight record: run the view, then complete or discard it."""

    record: IdempotencyRecord


@dataclass(frozen=True)
class Replay:
    record: IdempotencyRecord


def _new_record(*, scope: str, key: str, method: str, path: str, fingerprint: str, now: datetime) -> IdempotencyRecord:
    return IdempotencyRecord(
        scope=scope,
        key=key,
        method=method,
        path=path,
        request_fingerprint=fingerprint,
        status=IdempotencyStatus.IN_FLIGHT,
        lock_token=uuid.uuid4(),
        locked_at=now,
        created_at=now,
        expires_at=now + settings.IDEMPOTENCY_KEY_TTL,
    )


def idempotency_record_acquire(
    *,
    scope: str,
    key: str,
    method: str,
    path: str,
    fingerprint: str,
    now: datetime | None = None,
    in_transaction: bool = False,
) -> Acquired | Replay:
    """Insert the in-flight record, or decide from the existing one. Raises 422 / 409 errors.

    ``in_transaction`` (PostgreSQL, inside the request's transaction): the record stays
    uncommitted until the write commits, guarded by the key's advisory lock (see the module doc).
    """
    now = now or timezone.now()
    record = _new_record(scope=scope, key=key, method=method, path=path, fingerprint=fingerprint, now=now)
    for _attempt in range(3):
        if _insert_if_absent(record=record, advisory_lock=in_transaction):
            return Acquired(record)
        existing = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
        if existing is None:
            if in_transaction:  # another transaction holds the key's lock: its record is not committed yet
                raise IdempotencyKeyInUse(headers={"Retry-After": "1"})
            continue  # purged between the two statements: insert again
        if existing.expires_at <= now:
            # A dead key (not purged yet) is free: take it over with this request.
            if _take_over(existing=existing, record=record, fields=_INSERT_FIELDS):
                return Acquired(record)
            continue
        if (existing.method, existing.path, existing.request_fingerprint) != (method, path, fingerprint):
            raise IdempotencyKeyReused()
        if existing.status == IdempotencyStatus.COMPLETED:
            return Replay(existing)
        if existing.locked_at + _lock_timeout() > now:
            raise IdempotencyKeyInUse(headers={"Retry-After": "1"})
        # The first request's process died while in flight: the same request may run again.
        record.created_at = existing.created_at
        if _take_over(existing=existing, record=record, fields=("lock_token", "locked_at", "expires_at")):
            logger.warning("idempotency.taken_over scope=%s path=%s", scope, path)
            return Acquired(record)
    raise IdempotencyKeyInUse(headers={"Retry-After": "1"})


def _take_over(*, existing: IdempotencyRecord, record: IdempotencyRecord, fields: tuple[str, ...]) -> bool:
    """Compare-and-swap on the old ``lock_token``: exactly one concurrent taker wins."""
    values = {name: getattr(record, name) for name in fields}
    values.update(status=IdempotencyStatus.IN_FLIGHT, response_status=None, response_body=None, response_headers=None)
    values.update(completed_at=None)
    won = IdempotencyRecord.objects.filter(pk=existing.pk, lock_token=existing.lock_token).update(**values) == 1
    if won:
        record.pk = existing.pk
    return won


def idempotency_record_complete(*, record: IdempotencyRecord, response: HttpResponse) -> bool:
    """Store the response (still owned by ``record.lock_token``); False if the record was taken over."""
    headers = {name: response[name] for name in REPLAYED_RESPONSE_HEADERS if response.has_header(name)}
    updated = IdempotencyRecord.objects.filter(
        pk=record.pk, lock_token=record.lock_token, status=IdempotencyStatus.IN_FLIGHT
    ).update(
        status=IdempotencyStatus.COMPLETED,
        response_status=response.status_code,
        response_body=response.content.decode("utf-8"),
        response_headers=headers,
        completed_at=timezone.now(),
    )
    if not updated:
        logger.warning("idempotency.lost_record scope=%s path=%s", record.scope, record.path)
    return updated == 1


def idempotency_record_store(
    *, scope: str, key: str, method: str, path: str, fingerprint: str, response: HttpResponse
) -> bool:
    """Insert an already completed record (one statement): the answer of a transactional write
    that rolled back. False if the key was taken meanwhile (that request's answer stands)."""
    now = timezone.now()
    record = _new_record(scope=scope, key=key, method=method, path=path, fingerprint=fingerprint, now=now)
    record.status = IdempotencyStatus.COMPLETED
    record.response_status = response.status_code
    record.response_body = response.content.decode("utf-8")
    record.response_headers = {name: response[name] for name in REPLAYED_RESPONSE_HEADERS if response.has_header(name)}
    record.completed_at = now
    return _insert_if_absent(record=record, fields_named=_COMPLETED_FIELDS)


def idempotency_record_discard(*, record: IdempotencyRecord) -> None:
    """Forget an in-flight record this request owns, so a retry with the same key runs again."""
    IdempotencyRecord.objects.filter(pk=record.pk, lock_token=record.lock_token).delete()


def idempotency_records_purge(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Delete expired records (kept ``IDEMPOTENCY_KEY_TTL``, at least 24 h) in short batches."""
    now = now or timezone.now()
    deleted = 0
    while True:
        ids = list(IdempotencyRecord.objects.filter(expires_at__lte=now).values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        deleted += IdempotencyRecord.objects.filter(pk__in=ids, expires_at__lte=now).delete()[0]
    if deleted:
        logger.info("idempotency.purged count=%s", deleted)
    return deleted


def replay_response(*, record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(record.response_body or "", status=record.response_status)
    for name, value in (record.response_headers or {}).items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def _is_storable(response: HttpResponse) -> bool:
    if response.streaming or response.status_code >= 500 or response.status_code in NOT_STORED_STATUSES:
        return False
    try:
        response.content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _error_response(error: ApplicationError) -> JsonResponse:
    response = JsonResponse(error.as_dict(), status=error.http_status)
    for name, value in error.headers.items():
        response[name] = value
    return response


# --- middleware ------------------------------------------------------------------------------


class IdempotencyMiddleware:
    """Applies ``Idempotency-Key`` to every POST under ``/store``; place it after the body-size limit."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def applies_to(self, request: HttpRequest) -> bool:
        return (
            request.method in METHODS
            and request.path_info.startswith(PATH_PREFIX)
            and HEADER in request.headers
            and not any(pattern.match(request.path_info) for pattern in NOT_STORED_PATHS)
        )

    def in_transaction(self, request: HttpRequest) -> bool:
        return db.is_postgresql() and any(pattern.match(request.path_info) for pattern in TRANSACTIONAL_PATHS)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not self.applies_to(request):
            return self.get_response(request)
        try:
            key = idempotency_key_validate(raw=request.headers[HEADER])
            scope = idempotency_scope_for(request=request)
            # Django caches the body in request._body; DRF then parses from that cache.
            fingerprint = request_fingerprint(body=request.body)
            if self.in_transaction(request):
                return self._call_in_transaction(request, scope=scope, key=key, fingerprint=fingerprint)
            outcome = idempotency_record_acquire(
                scope=scope, key=key, method=request.method or "POST", path=request.path, fingerprint=fingerprint
            )
        except _Skip:
            return self.get_response(request)
        except RequestDataTooBig:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return _error_response(
                ApplicationError(f"Request body larger than {limit} bytes.", code="request_too_large", http_status=413)
            )
        except UnreadablePostError:
            return _error_response(ApplicationError("The request body could not be read.", code="bad_request"))
        except ApplicationError as error:
            logger.info("idempotency.rejected code=%s path=%s", error.code, request.path)
            return _error_response(error)
        except DATABASE_ERRORS as exc:  # the view would fail the same way: do not run it
            return _error_response(database_unavailable(exc, path=request.path))

        if isinstance(outcome, Replay):
            logger.info(
                "idempotency.replayed scope=%s path=%s status=%s", scope, request.path, outcome.record.response_status
            )
            return replay_response(record=outcome.record)

        record = outcome.record
        try:
            response = self.get_response(request)
        except BaseException:
            _settle(lambda: idempotency_record_discard(record=record), record=record)
            raise
        if _is_storable(response):
            _settle(lambda: idempotency_record_complete(record=record, response=response), record=record)
        else:
            _settle(lambda: idempotency_record_discard(record=record), record=record)
        return response

    def _call_in_transaction(self, request: HttpRequest, *, scope: str, key: str, fingerprint: str) -> HttpResponse:
        """Claim, run the view and store its answer in one transaction (see the module doc)."""
        method, path = request.method or "POST", request.path
        rolled_back: HttpResponse | None = None
        try:
            with db.request_transaction():
                outcome = idempotency_record_acquire(
                    scope=scope, key=key, method=method, path=path, fingerprint=fingerprint, in_transaction=True
                )
                if isinstance(outcome, Replay):
                    logger.info(
                        "idempotency.replayed scope=%s path=%s status=%s", scope, path, outcome.record.response_status
                    )
                    return replay_response(record=outcome.record)
                response = self.get_response(request)
                if not _is_storable(response):
                    transaction.set_rollback(True)  # no record: a retry runs again
                    return response
                if transaction.get_rollback():  # the service failed: nothing of the write remains
                    rolled_back = response
                else:
                    idempotency_record_complete(record=outcome.record, response=response)
                    return response
        except ApplicationError as error:
            logger.info("idempotency.rejected code=%s path=%s", error.code, path)
            return _error_response(error)
        except DATABASE_ERRORS as exc:  # the claim, the record or the COMMIT failed: the write did not commit
            return _error_response(database_unavailable(exc, path=path))
        record = IdempotencyRecord(scope=scope, path=path)
        _settle(
            lambda: idempotency_record_store(
                scope=scope, key=key, method=method, path=path, fingerprint=fingerprint, response=rolled_back
            ),
            record=record,
        )
        return rolled_back


def _settle(write: Callable[[], object], *, record: IdempotencyRecord) -> None:
    """Store or discard the record after the view; a database outage leaves it in flight (taken
    over after ``IDEMPOTENCY_LOCK_TIMEOUT``) instead of turning the view's answer into a 500."""
    try:
        write()
    except DATABASE_ERRORS as exc:
        logger.warning(
            "idempotency.settle_failed scope=%s path=%s error=%s", record.scope, record.path, type(exc).__name__
        )
