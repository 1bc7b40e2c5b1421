"""The benchmark's load generator: a small asyncio HTTP/1.1 client. Dev tooling only.

Every request says ``Connection: close`` (gunicorn's sync workers close it anyway), so every request opens a
new TCP connection (for the app and the ceiling alike). Latency is measured per request from
connect to the last body byte.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

HOST = "127.0.0.1"
TIMEOUT = 300.0  # per request: a queue of 300 hot-SKU buyers in front of 2 workers is slow, not broken


@dataclass(frozen=True)
class Request:
    name: str
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"

    def raw(self, host: str) -> bytes:
        lines = [
            f"{self.method} {self.path} HTTP/1.1",
            f"Host: {host}",
            "Accept: application/json",
            "Connection: close",
        ]
        lines += [f"{k}: {v}" for k, v in self.headers]
        if self.method != "GET":
            lines += [f"Content-Type: {self.content_type}", f"Content-Length: {len(self.body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def post_json(name: str, path: str, body: dict[str, Any], *, key: str | None = None) -> Request:
    headers = (("Idempotency-Key", key),) if key else ()
    return Request(name, "POST", path, json.dumps(body).encode(), headers)


def post_form(name: str, path: str, form: dict[str, str]) -> Request:
    return Request(name, "POST", path, urlencode(form).encode(), content_type="application/x-www-form-urlencoded")


async def send(port: int, request: Request) -> tuple[int, bytes]:
    """One request on a connection of its own: (status, body)."""
    return await asyncio.wait_for(_send(port, request), TIMEOUT)


async def _send(port: int, request: Request) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(request.raw(f"{HOST}:{port}"))
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        length = None
        for line in header_lines:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        body = await (reader.readexactly(length) if length is not None else reader.read())
        return status, body
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


@dataclass
class RunResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_error: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def drive(*, port: int, make: Callable[[int, int], Request], total: int, concurrency: int) -> RunResult:
    """Send ``total`` requests from ``concurrency`` clients; request n of client i is ``make(i, n)``.
    Non-2xx answers count as errors."""
    result = RunResult()
    issued = 0
    started = time.perf_counter()

    async def client(index: int) -> None:
        nonlocal issued
        n = 0
        while issued < total:
            issued += 1
            request = make(index, n)
            n += 1
            t0 = time.perf_counter()
            try:
                status, body = await send(port, request)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                result.errors += 1
                result.first_error = result.first_error or f"{request.name}: {type(exc).__name__} {exc}"
                continue
            result.latencies.append(time.perf_counter() - t0)
            result.requests += 1
            if not 200 <= status < 300:
                result.errors += 1
                result.first_error = result.first_error or f"{request.name}: HTTP {status} {body[:200]!r}"

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result
