"""The stand-in's test clock: real time plus an offset that ``POST /_control/clock`` advances.

``now()`` is what the stand-in believes the time is (idempotency keys expire after 24 h of it,
authorizations after 7 days of it). ``POST /_control/clock {"advance": seconds}`` moves it
forward; ``DELETE /_control/clock`` puts it back to real time. ``GET /_control/clock`` answers
``{"now": <unix seconds>, "offset": <seconds>}``.
"""

from __future__ import annotations

import time

from aiohttp import web

_offset = 0.0
_listeners: list = []  # callables run after every advance (e.g. expire old authorizations)


def now() -> float:
    return time.time() + _offset


def on_advance(callback) -> None:  # noqa: ANN001 - a plain callable of no argument
    _listeners.append(callback)


def reset() -> None:
    global _offset
    _offset = 0.0


async def _get(request: web.Request) -> web.Response:
    return web.json_response({"now": now(), "offset": _offset})


async def _advance(request: web.Request) -> web.Response:
    global _offset
    data = await request.json() if request.can_read_body else {}
    seconds = float(data.get("advance", 0))
    if seconds < 0:
        return web.json_response({"error": {"message": "the clock only moves forward"}}, status=400)
    _offset += seconds
    for callback in list(_listeners):
        callback()
    return web.json_response({"now": now(), "offset": _offset})


async def _reset(request: web.Request) -> web.Response:
    reset()
    return web.json_response({"now": now(), "offset": _offset})


def install(app: web.Application) -> None:
    app.router.add_get("/_control/clock", _get)
    app.router.add_post("/_control/clock", _advance)
    app.router.add_delete("/_control/clock", _reset)
