"""Events the Stripe stand-in sends, and how they reach webhook endpoints.

Every event (ours and localstripe's own, whose ``schedule_webhook`` is replaced) goes
through :func:`schedule`: stored by localstripe's ``Event`` (so ``GET /v1/events`` lists it,
newest first like Stripe), then delivered, signed, to every endpoint registered with
``POST /_config/webhooks/{id}`` whose event list includes its type, according to the
delivery switches (``POST /_control/webhooks/delivery``):

* ``mode``: ``immediate`` (default: POSTed at once, no 1 s sleep) or ``hold`` (queued until
  ``POST /_control/webhooks/release``);
* ``delay``: seconds to wait before each immediate delivery;
* ``duplicate``: deliver every event twice;
* ``drop``: drop the next N events (only those of ``types`` when given): never delivered,
  never held, still listed by ``GET /v1/events``.

The signature is Stripe's: ``Stripe-Signature: t=<delivery time>,v1=HMAC-SHA256(secret,
"<t>.<body>")`` (Stripe signs each attempt with the attempt's time, so a held event
released later still verifies within the receiver's tolerance).

Dev/test tooling only: runs inside the launcher process, next to localstripe.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import hmac
import json
import logging
import random
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from aiohttp import web
from localstripe import resources
from localstripe import webhooks as ls_webhooks

logger = logging.getLogger("aiohttp.access")

DELIVERY_TIMEOUT = 10.0  # seconds for one POST to an endpoint
RESET_DRAIN_TIMEOUT = 5.0

# The request an event comes from ({"id", "idempotency_key"}), or None (automatic: expiry,
# clock, control actions). Set per request by :func:`request_context_middleware`.
current_request: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "standin_current_request", default=None
)


@dataclass
class Switches:
    mode: str = "immediate"
    delay: float = 0.0
    duplicate: bool = False
    drop: int = 0
    types: list[str] | None = None


_switches = Switches()
_held: list[str] = []  # event ids, in the order they happened
_inflight: set[asyncio.Task[Any]] = set()
_deliveries: deque[dict[str, Any]] = deque(maxlen=1000)  # the last delivery attempts, for debugging
_deferred: list[list[tuple[str, Any, dict[str, Any] | None]]] = []


# --- Emitting -----------------------------------------------------------------------------


def emit(event_type: str, obj: Any, *, previous_attributes: dict[str, Any] | None = None) -> resources.Event:
    """Store an event whose ``data.object`` is a snapshot of ``obj`` now, and deliver it."""
    event = resources.Event(event_type, obj)
    if previous_attributes:
        event.data["previous_attributes"] = previous_attributes
    schedule(event)
    return event


def emit_later(event_type: str, obj: Any, *, previous_attributes: dict[str, Any] | None = None) -> None:
    """Emit at the end of the enclosing :func:`deferred` block (snapshot taken then), or now."""
    if _deferred:
        _deferred[-1].append((event_type, obj, previous_attributes))
    else:
        emit(event_type, obj, previous_attributes=previous_attributes)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold back :func:`emit_later` events until the block ends (so ``payment_intent.succeeded``
    comes after the ``charge.*`` events of the same operation, as with Stripe)."""
    _deferred.append([])
    try:
        yield
    finally:
        items = _deferred.pop()
        if _deferred:  # nested: the outer block emits them
            _deferred[-1].extend(items)
        else:
            for event_type, obj, previous in items:
                emit(event_type, obj, previous_attributes=previous)


def _targets(event_type: str) -> list[tuple[str, ls_webhooks.Webhook]]:
    return [
        (webhook_id, hook)
        for webhook_id, hook in list(ls_webhooks._webhooks.items())
        if hook.events is None or event_type in hook.events
    ]


def _object_id(event: resources.Event) -> str | None:
    return (event.data.get("object") or {}).get("id")


def schedule(event: resources.Event) -> None:
    """Replaces localstripe's ``schedule_webhook``: drop, hold or deliver, per the switches."""
    if "request" not in vars(event):
        event.request = current_request.get()
    event.pending_webhooks = len(_targets(event.type))
    switches = _switches
    if switches.drop > 0 and (switches.types is None or event.type in switches.types):
        switches.drop -= 1
        _deliveries.append({"event": event.id, "type": event.type, "dropped": True})
        return
    if switches.mode == "hold":
        _held.append(event.id)
        return
    copies = 2 if switches.duplicate else 1
    _spawn(_deliver_copies(event, copies=copies, delay=switches.delay))


def _spawn(coroutine: Any) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(coroutine)
    _inflight.add(task)
    task.add_done_callback(_inflight.discard)
    return task


async def _deliver_copies(event: resources.Event, *, copies: int, delay: float) -> list[dict[str, Any]]:
    if delay > 0:
        await asyncio.sleep(delay)
    results: list[dict[str, Any]] = []
    for _ in range(copies):
        results.extend(await deliver(event))
    return results


async def deliver(event: resources.Event) -> list[dict[str, Any]]:
    """POST ``event`` to every matching endpoint, one after the other; their answers."""
    payload = json.dumps(event._export(), indent=2, sort_keys=True).encode()
    results: list[dict[str, Any]] = []
    for webhook_id, hook in _targets(event.type):
        timestamp = int(time.time())
        signature = hmac.new(hook.secret.encode(), b"%d.%s" % (timestamp, payload), hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": f"t={timestamp},v1={signature}",
        }
        result: dict[str, Any] = {"webhook": webhook_id, "event": event.id, "type": event.type, "status": None}
        try:
            timeout = aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.post(hook.url, data=payload, headers=headers) as response:
                    await response.read()
                    result["status"] = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
        logger.info("standin webhook %s %s -> %s: %s", event.type, event.id, webhook_id, result.get("status"))
        _deliveries.append(result)
        results.append(result)
    return results


# --- Request context ----------------------------------------------------------------------


def _new_request_id() -> str:
    return "req_" + resources.random_id(14)


@web.middleware
async def request_context_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Events caused by an API request carry ``request: {id, idempotency_key}`` like Stripe's;
    the rest null (dashboard actions set their own, see :func:`dashboard_request`)."""
    if request.path.startswith("/v1/"):
        context = {"id": _new_request_id(), "idempotency_key": request.headers.get("Idempotency-Key")}
    else:
        context = None
    with request_context(context):
        return await handler(request)


@contextlib.contextmanager
def request_context(context: dict[str, Any] | None) -> Iterator[None]:
    token = current_request.set(context)
    try:
        yield
    finally:
        current_request.reset(token)


def dashboard_request() -> dict[str, Any]:
    """A person in Stripe's dashboard: a request id, none of our idempotency keys."""
    return {"id": _new_request_id(), "idempotency_key": None}


# --- Control routes -------------------------------------------------------------------------


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": {"type": "invalid_request_error", "message": message}}, status=status)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The JSON object body of a control request ({} if none). ``read()`` is cached, so this works
    even after localstripe's auth middleware has read the body."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text='{"error": {"message": "the body must be JSON"}}', content_type="application/json"
        ) from None
    return data if isinstance(data, dict) else {}


def _held_events() -> list[resources.Event]:
    events = []
    for event_id in _held:
        event = resources.store.get("event:" + event_id)
        if event is not None:  # gone if the store was flushed
            events.append(event)
    return events


def _describe(event: resources.Event) -> dict[str, Any]:
    return {"id": event.id, "type": event.type, "object_id": _object_id(event), "created": event.created}


async def _delivery(request: web.Request) -> web.Response:
    data = await read_json(request)
    mode = data.get("mode", "immediate")
    if mode not in ("immediate", "hold"):
        return _error("mode must be 'immediate' or 'hold'")
    try:
        delay = float(data.get("delay", 0) or 0)
        drop = int(data.get("drop", 0) or 0)
    except (TypeError, ValueError):
        return _error("delay must be a number of seconds and drop an integer")
    types = data.get("types")
    if types is not None and not (isinstance(types, list) and all(isinstance(t, str) for t in types)):
        return _error("types must be a list of event types")
    if delay < 0 or drop < 0:
        return _error("delay and drop cannot be negative")
    global _switches
    _switches = Switches(mode=mode, delay=delay, duplicate=bool(data.get("duplicate", False)), drop=drop, types=types)
    return web.json_response({**asdict(_switches), "held": len(_held)})


async def _held_list(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [_describe(e) for e in _held_events()]})


async def _held_drop(request: web.Request) -> web.Response:
    count = len(_held)
    _held.clear()
    return web.json_response({"dropped": count})


async def _release(request: web.Request) -> web.Response:
    data = await read_json(request)
    order = data.get("order", "fifo")
    if order not in ("fifo", "reverse", "shuffle"):
        return _error("order must be 'fifo', 'reverse' or 'shuffle'")
    drop_ids = data.get("drop") or []
    if not isinstance(drop_ids, list):
        return _error("drop must be a list of event ids")
    events = _held_events()
    _held.clear()
    if order == "reverse":
        events.reverse()
    elif order == "shuffle":
        random.Random(int(data.get("seed", 0) or 0)).shuffle(events)
    copies = 2 if data.get("duplicate") else 1
    wait = data.get("wait", True) is not False

    async def release_all() -> list[dict[str, Any]]:
        out = []
        for event in events:
            entry = {**_describe(event), "dropped": event.id in drop_ids, "deliveries": []}
            if not entry["dropped"]:
                for _ in range(copies):
                    entry["deliveries"].extend(await deliver(event))
            entry["status_codes"] = [d["status"] for d in entry["deliveries"]]
            out.append(entry)
        return out

    task = _spawn(release_all())
    if not wait:
        return web.json_response({"object": "list", "data": [_describe(e) for e in events], "waited": False})
    results = await task
    return web.json_response({"object": "list", "data": results, "waited": True})


async def drain(timeout: float | None = None) -> int:
    """Wait until every in-flight delivery finished (new ones started meanwhile too)."""
    count = 0
    deadline = None if timeout is None else time.monotonic() + timeout
    while _inflight:
        tasks = list(_inflight)
        count += len(tasks)
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
        done, pending = await asyncio.wait(tasks, timeout=remaining)
        if pending:
            for task in pending:
                task.cancel()
            break
    return count


async def _drain(request: web.Request) -> web.Response:
    return web.json_response({"drained": await drain()})


async def _deliveries_list(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": list(_deliveries)})


async def reset() -> None:
    """Delivery back to immediate with no switch, nothing held (in-flight deliveries finish first)."""
    global _switches
    _switches = Switches()
    _held.clear()
    await drain(timeout=RESET_DRAIN_TIMEOUT)
    _deliveries.clear()


# --- localstripe patches --------------------------------------------------------------------


def _event_list_all(cls: type, url: str, **kwargs: Any) -> resources.List:
    li = _original_event_list_all(url, **kwargs)
    li._list.reverse()  # the store keeps them oldest first; Stripe lists the newest first
    return li


_original_event_list_all = resources.Event._api_list_all


def install(app: web.Application) -> None:
    resources.schedule_webhook = schedule  # localstripe's own events (payment_intent.succeeded, ...)
    ls_webhooks.schedule_webhook = schedule
    resources.Event._api_list_all = classmethod(_event_list_all)
    app.middlewares.append(request_context_middleware)
    app.router.add_post("/_control/webhooks/delivery", _delivery)
    app.router.add_get("/_control/webhooks/held", _held_list)
    app.router.add_delete("/_control/webhooks/held", _held_drop)
    app.router.add_post("/_control/webhooks/release", _release)
    app.router.add_post("/_control/webhooks/drain", _drain)
    app.router.add_get("/_control/webhooks/deliveries", _deliveries_list)


__all__ = ["deferred", "drain", "emit", "emit_later", "install", "reset", "schedule"]
