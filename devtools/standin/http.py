"""The stand-in's HTTP layer: the promises Stripe keeps over HTTP and localstripe does not.

One aiohttp middleware, first in the chain (in front of localstripe's error, auth and
store-saving middlewares, so a write is done and pickled before this layer answers or
drops the answer), plus control routes under ``/_control/`` (docs/localstripe.md,
"Faults and the control API"):

* **Idempotency-Key** on ``POST``/``DELETE /v1/...``, scoped by API key: the first result
  of an executed request is stored with a fingerprint of the request (method, path, parsed
  parameters) for 24 h of ``clock.now()``. The same key and parameters replay it
  (``Idempotent-Replayed: true``); other parameters answer 400 ``idempotency_error``; a
  request still executing answers 409 ``idempotency_key_in_use``. Nothing is stored for a
  401, a route that does not exist, or a request refused by a fault before it executed.
* **Faults**: ``POST /_control/faults`` arms a rule (``when`` ``before``: the request is
  refused unexecuted; ``after``: it is executed and saved, then its answer is replaced);
  statuses 500/502/503/429/402/409, ``"reset"`` (connection closed, no answer) and
  ``"timeout"`` (the answer comes ``latency`` seconds late).
* **Request log** of every ``/v1/`` request: ``GET /_control/requests``.

``DELETE /_config/data`` (localstripe's store flush) also forgets stored keys, and
``/_control/`` routes skip localstripe's auth (no API key needed; see ``_control``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from localstripe.errors import UserError
from localstripe.resources import store
from localstripe.server import unflatten_data
from multidict import MultiDict

from devtools.standin import clock

logger = logging.getLogger(__name__)

KEY_TTL = 24 * 3600.0
TIMEOUT_LATENCY = 60.0  # how late a "timeout" answers when no latency is given
LOG_LIMIT = 10_000
IDEMPOTENT_METHODS = ("POST", "DELETE")
FAULT_STATUSES = (500, 502, 503, 429, 402, 409, "reset", "timeout")

MISMATCH_MESSAGE = (
    "Keys for idempotent requests can only be used with the same parameters they were first used with. "
    "Try using a key other than '{key}' if you meant to execute a different request."
)
IN_USE_MESSAGE = (
    "There is currently another in-progress request using this Stripe-Idempotency key (that probably means you "
    "submitted twice, and the other request is still going through): {key}. Please try again later."
)


@dataclass
class _Saved:
    fingerprint: str
    first_used: float
    request_id: str
    response: tuple[int, bytes, str] | None = None  # None while the first request executes


class _Abandoned(Exception):
    """A reset cut an injected delay short: the request is dropped unexecuted."""


_keys: dict[tuple[str, str], _Saved] = {}
_faults: list[dict[str, Any]] = []
_log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
_wakeup: asyncio.Event | None = None  # set by a reset: ends every injected delay


# --- Helpers ----------------------------------------------------------------------


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=lambda x: json.dumps(x, indent=2) + "\n")


def _error(status: int, type_: str, message: str, **fields: Any) -> web.Response:
    return _json(status, {"error": {"type": type_, "message": message, **fields}})


async def _sleep(seconds: float) -> bool:
    """Sleep; ``True`` if a reset woke us early."""
    global _wakeup
    if seconds <= 0:
        return False
    if _wakeup is None:
        _wakeup = asyncio.Event()
    try:
        await asyncio.wait_for(_wakeup.wait(), seconds)
    except TimeoutError:
        return False
    return True


def _wake_sleepers() -> None:
    global _wakeup
    if _wakeup is not None:
        _wakeup.set()
    _wakeup = None


async def _params(request: web.Request) -> dict[str, Any]:
    """The request's parameters as localstripe reads them: a JSON or form body, plus the query."""
    body = await request.read() if request.can_read_body else b""
    data: Any = {}
    if body.strip():
        try:
            data = json.loads(body)
        except ValueError:
            try:
                data = unflatten_data(MultiDict(parse_qsl(body.decode(), keep_blank_values=True)))
            except Exception:  # noqa: BLE001 - unparseable: fingerprint the raw text
                data = {"_body": body.decode(errors="replace")}
    if not isinstance(data, dict):
        data = {"_body": data}
    query = unflatten_data(request.query) if request.query else {}
    return {**data, **query}


def _api_key(request: web.Request, params: dict[str, Any]) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme == "Bearer":
        return value.strip()
    if scheme == "Basic":
        try:
            return base64.b64decode(value.strip()).decode().split(":")[0]
        except ValueError:
            return ""
    key = params.get("key")  # publishable key in the body (tokens, 3-D Secure)
    return key if isinstance(key, str) else ""


def _fingerprint(request: web.Request, params: dict[str, Any]) -> str:
    canonical = {"method": request.method, "path": request.path, "params": params}
    return json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _params_match(expected: Any, actual: Any) -> bool:
    """``expected`` (from a fault's ``param``) equals ``actual``, form strings ("300") matching 300."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            name in actual and _params_match(value, actual[name]) for name, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(_params_match(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return actual == expected or (isinstance(actual, str) and actual == _form_value(expected))


# --- Faults -----------------------------------------------------------------------


def _take_fault(request: web.Request, params: dict[str, Any]) -> dict[str, Any] | None:
    key = request.headers.get("Idempotency-Key")
    for rule in _faults:
        if rule["count"] <= 0 or rule["method"] not in ("*", request.method):
            continue
        if not re.search(rule["path"], request.path):
            continue
        if rule["idempotency_key"] is not None and (key is None or not re.search(rule["idempotency_key"], key)):
            continue
        if rule["param"] and not _params_match(rule["param"], params):
            continue
        rule["count"] -= 1
        rule["fired"] += 1
        return rule
    return None


def _fault_response(rule: dict[str, Any], key: str | None) -> web.Response:
    status = rule["status"]
    if rule["body"] is not None:
        return _json(status, rule["body"])
    note = f" (stand-in fault {rule['id']})"
    if status == 429:
        message = "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."
        return _error(429, "invalid_request_error", message + note, code="rate_limit")
    if status == 402:
        message = "Your card was declined."
        return _error(402, "card_error", message, code="card_declined", decline_code="generic_decline")
    if status == 409:
        message = IN_USE_MESSAGE.format(key=key or "") + note
        return _error(409, "idempotency_error", message, code="idempotency_key_in_use")
    return _error(status, "api_error", f"An error occurred with our connection to Stripe.{note}")


def _drop_connection(request: web.Request) -> web.Response:
    """Close the connection without an answer (the response returned is never written)."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


def _validate_fault(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    unknown = set(data) - {"method", "path", "count", "when", "status", "latency", "body", "idempotency_key", "param"}
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    path = data.get("path")
    if not isinstance(path, str):
        raise ValueError("path (a regular expression) is required")
    for name in ("path", "idempotency_key"):
        if data.get(name) is not None:
            try:
                re.compile(data[name])
            except (re.error, TypeError) as exc:
                raise ValueError(f"{name} is not a regular expression: {exc}") from None
    status = data.get("status", 500)
    if status not in FAULT_STATUSES or isinstance(status, bool):
        raise ValueError(f"status must be one of {FAULT_STATUSES}")
    when = data.get("when", "before")
    if when not in ("before", "after"):
        raise ValueError("when must be 'before' or 'after'")
    count = data.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError("count must be a positive integer")
    latency = data.get("latency", 0.0)
    if not isinstance(latency, (int, float)) or isinstance(latency, bool) or latency < 0:
        raise ValueError("latency must be a number of seconds >= 0")
    if status == "timeout" and not latency:
        latency = TIMEOUT_LATENCY
    param = data.get("param")
    if param is not None and not isinstance(param, dict):
        raise ValueError("param must be an object")
    return {
        "id": _new_id("fault"),
        "method": str(data.get("method", "POST")).upper(),
        "path": path,
        "count": count,
        "when": when,
        "status": status,
        "latency": float(latency),
        "body": data.get("body"),
        "idempotency_key": data.get("idempotency_key"),
        "param": param,
        "fired": 0,
    }


# --- The middleware ---------------------------------------------------------------


async def _execute(request: web.Request, handler: Any, entry: dict[str, Any], delay: float) -> web.StreamResponse:
    """Run localstripe (after ``delay``), the chain's errors as Stripe-shaped answers."""
    if await _sleep(delay):
        raise _Abandoned
    try:
        response = await handler(request)
    except web.HTTPException:  # no such route, wrong method: nothing executed
        raise
    except Exception as exc:  # noqa: BLE001 - a localstripe bug: answer like Stripe's 500
        logger.exception("localstripe crashed on %s %s", request.method, request.path)
        response = _error(500, "api_error", f"localstripe failed: {type(exc).__name__}: {exc}")
    entry["executed"] = response.status != 401
    return response


async def _answer(
    request: web.Request, handler: Any, entry: dict[str, Any], params: dict[str, Any], delay: float
) -> web.StreamResponse:
    """Execute the request, or answer it from (or refuse it because of) its idempotency key."""
    key = entry["idempotency_key"]
    if key is None:
        return await _execute(request, handler, entry, delay)
    scope = (_api_key(request, params), key)
    fingerprint = _fingerprint(request, params)
    saved = _keys.get(scope)
    if saved is not None and saved.response is not None and clock.now() - saved.first_used >= KEY_TTL:
        del _keys[scope]
        saved = None
    if saved is not None:
        if saved.fingerprint != fingerprint:
            return _error(400, "idempotency_error", MISMATCH_MESSAGE.format(key=key))
        if saved.response is None:
            return _error(409, "idempotency_error", IN_USE_MESSAGE.format(key=key), code="idempotency_key_in_use")
        status, body, content_type = saved.response
        entry["replayed"] = True
        headers = {"Content-Type": content_type, "Idempotent-Replayed": "true", "Original-Request": saved.request_id}
        return web.Response(status=status, body=body, headers=headers)

    saved = _Saved(fingerprint=fingerprint, first_used=clock.now(), request_id=entry["request_id"])
    _keys[scope] = saved
    try:
        response = await _execute(request, handler, entry, delay)
    except BaseException:
        if _keys.get(scope) is saved:
            del _keys[scope]
        raise
    if _keys.get(scope) is saved:  # a flush meanwhile forgot every key
        body = getattr(response, "body", None)
        if entry["executed"] and isinstance(body, (bytes, bytearray)):
            content_type = response.headers.get("Content-Type", "application/json")
            saved.response = (response.status, bytes(body), content_type)
        else:
            del _keys[scope]
    return response


async def _api_request(request: web.Request, handler: Any) -> web.StreamResponse:
    params = await _params(request)
    key = request.headers.get("Idempotency-Key") if request.method in IDEMPOTENT_METHODS else None
    entry: dict[str, Any] = {
        "request_id": _new_id("req"),
        "time": clock.now(),
        "method": request.method,
        "path": request.path,
        "idempotency_key": key,
        "params": params,
        "status": None,
        "replayed": False,
        "fault": None,
        "executed": False,
    }
    _log.append(entry)
    rule = _take_fault(request, params)
    if rule is not None:
        entry["fault"] = rule["id"]
    timeout = rule is not None and rule["status"] == "timeout"
    try:
        if rule is not None and rule["when"] == "before" and not timeout:
            if await _sleep(rule["latency"]) or rule["status"] == "reset":
                return _drop_connection(request)
            response: web.StreamResponse = _fault_response(rule, key)
        else:
            # A "timeout" before: the request is received (its key in use) but executes late.
            delay = rule["latency"] if timeout and rule["when"] == "before" else 0.0
            response = await _answer(request, handler, entry, params, delay)
            if rule is not None and rule["when"] == "after":
                woken = await _sleep(rule["latency"])
                if rule["status"] == "reset" or (woken and not timeout):
                    return _drop_connection(request)
                if not timeout:
                    response = _fault_response(rule, key)
    except _Abandoned:
        return _drop_connection(request)
    except web.HTTPException as exc:
        entry["status"] = exc.status
        raise
    entry["status"] = response.status
    response.headers["Request-Id"] = entry["request_id"]
    if key is not None:
        response.headers["Idempotency-Key"] = key
    return response


async def _control(request: web.Request) -> web.StreamResponse:
    """A ``/_control/`` route, past localstripe's middlewares: no API key needed, and the body
    is left unread for the route (localstripe's auth middleware reads every POST body, after
    which ``request.can_read_body`` is false). Its errors and store saving are kept."""
    try:
        return await request.match_info.handler(request)
    except UserError as exc:
        return exc.to_response()
    finally:
        if request.method in ("PUT", "POST", "DELETE"):
            store.dump_to_disk()


@web.middleware
async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith("/v1/"):
        return await _api_request(request, handler)
    if request.path.startswith("/_control/"):
        return await _control(request)
    if request.method == "DELETE" and request.path == "/_config/data":
        try:
            return await handler(request)
        finally:
            _keys.clear()  # the objects the stored answers describe are gone
    return await handler(request)


# --- Control routes ---------------------------------------------------------------


async def _faults_add(request: web.Request) -> web.Response:
    try:
        rule = _validate_fault(await request.json())
    except ValueError as exc:  # JSONDecodeError included
        return _error(400, "invalid_request_error", str(exc))
    _faults.append(rule)
    return _json(200, rule)


async def _faults_list(request: web.Request) -> web.Response:
    return _json(200, {"data": _faults})


def _faults_clear() -> int:
    count = len(_faults)
    _faults.clear()
    _wake_sleepers()
    return count


async def _faults_delete(request: web.Request) -> web.Response:
    return _json(200, {"deleted": _faults_clear()})


async def _fault_delete(request: web.Request) -> web.Response:
    fault_id = request.match_info["id"]
    for rule in _faults:
        if rule["id"] == fault_id:
            _faults.remove(rule)
            return _json(200, {"deleted": 1})
    return _error(404, "invalid_request_error", f"No such fault: '{fault_id}'", code="resource_missing")


async def _requests_list(request: web.Request) -> web.Response:
    path, method = request.query.get("path"), request.query.get("method")
    try:
        pattern = re.compile(path) if path else None
    except re.error as exc:
        return _error(400, "invalid_request_error", f"path is not a regular expression: {exc}")
    data = [
        entry
        for entry in _log
        if (pattern is None or pattern.search(entry["path"])) and (not method or entry["method"] == method.upper())
    ]
    return _json(200, {"data": data})


async def _requests_delete(request: web.Request) -> web.Response:
    count = len(_log)
    _log.clear()
    return _json(200, {"deleted": count})


async def _reset(request: web.Request) -> web.Response:
    faults = _faults_clear()
    requests = len(_log)
    _log.clear()
    keys = len(_keys)
    _keys.clear()
    return _json(200, {"faults": faults, "requests": requests, "idempotency_keys": keys})


def install(app: web.Application) -> None:
    app.middlewares.insert(0, middleware)
    app.router.add_post("/_control/faults", _faults_add)
    app.router.add_get("/_control/faults", _faults_list)
    app.router.add_delete("/_control/faults", _faults_delete)
    app.router.add_delete("/_control/faults/{id}", _fault_delete)
    app.router.add_get("/_control/requests", _requests_list)
    app.router.add_delete("/_control/requests", _requests_delete)
    app.router.add_post("/_control/reset-http", _reset)
