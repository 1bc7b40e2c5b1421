"""Fixed-window throttles on the default cache, for the store API's abuse limits.

``cache.add`` + ``cache.incr`` are atomic on Redis (and on the local-memory cache), so parallel
requests cannot slip past the limit the way DRF's read-modify-write request history can. Rates
come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope]``, read on every request. A refused
request becomes ``429 rate_limited`` with ``Retry-After`` (common.errors).

Redis outage: fall back to a per-process limit, never a 500. When a cache call fails with a
connection error (Redis restarting, unreachable), the same fixed window is counted in this
process's own local-memory cache instead, ``checkout_throttle_cache_errors_total{scope}`` is
incremented and ``throttle.cache_unavailable`` is logged at most once per
``CACHE_ERROR_LOG_INTERVAL`` seconds per process (with the number of errors since the last line),
not once per request. Why a local limit rather than failing open: failing open would lift the
card-testing limits (payment sessions per cart and per IP, carts per IP) and the password-guessing
limit (failed logins per email) for as long as Redis is down, and an attacker who notices the
outage gets an unlimited window; a per-process count costs the same two atomic calls, keeps every
limit at most ``rate x web processes`` during the outage, and lets legitimate traffic through (a
shopper is far below any single process's limit). Counts restart when Redis is back (they would
have anyway: Redis lost them). Stripe's own fraud checks (Radar) still apply to every payment.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, cast

from django.core.cache.backends.locmem import LocMemCache
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from common import metrics

logger = logging.getLogger(__name__)

CACHE_ERROR_LOG_INTERVAL = 60.0  # seconds between two throttle.cache_unavailable lines of one process


def _cache_errors() -> tuple[type[BaseException], ...]:
    """What a cache backend raises when its server is unreachable (not a bug in our code)."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]  # OSError subclasses: sockets
    try:
        from django_redis.exceptions import ConnectionInterrupted
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # the cache is not django-redis
        return tuple(errors)
    return (*errors, ConnectionInterrupted, RedisConnectionError, RedisTimeoutError)


CACHE_ERRORS = _cache_errors()

# One per process; shared by every throttle while the shared cache is unreachable.
_local_cache = LocMemCache("throttle-fallback", {"OPTIONS": {"MAX_ENTRIES": 10_000}})


class _ErrorLog:
    """Counts cache errors and logs the first one, then at most one line per interval."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._last: float | None = None
        self._suppressed = 0

    def record(self, *, scope: str, error: BaseException) -> None:
        metrics.record_throttle_cache_error(scope=scope)
        now = time.monotonic()
        with self._lock:
            if self._last is not None and now - self._last < self.interval:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        logger.warning(
            "throttle.cache_unavailable scope=%s error=%s errors_since_last_line=%s fallback=per_process",
            scope,
            type(error).__name__,
            suppressed + 1,
        )

    def reset(self) -> None:
        with self._lock:
            self._last, self._suppressed = None, 0


cache_error_log = _ErrorLog(CACHE_ERROR_LOG_INTERVAL)


def local_fallback_clear() -> None:
    """Forget the per-process fallback counts (tests)."""
    _local_cache.clear()
    cache_error_log.reset()


class FixedWindowThrottle(SimpleRateThrottle):
    """Subclasses set ``scope`` and ``ident`` (``None`` = not throttled)."""

    scope: str

    def __init__(self) -> None:  # rates are read per request (settings may change in tests)
        rates = cast("dict[str, str | None]", api_settings.DEFAULT_THROTTLE_RATES)  # the stubs say numbers
        self.rate = rates.get(self.scope)
        self.num_requests, self.duration = self.parse_rate(self.rate)
        # The same two numbers as ints (DRF types them Optional; they are only read when a rate is set).
        self._limit: int = self.num_requests or 0
        self._seconds: int = self.duration or 1
        self._wait: float | None = None

    def ident(self, request: Any, view: Any) -> str | None:
        raise NotImplementedError

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        ident = self.ident(request, view)
        if not ident:
            return None
        return f"throttle:{self.scope}:{ident}"

    def allow_request(self, request: Any, view: Any) -> bool:
        window = self._window(request, view)
        if window is None:
            return True
        key, now, index = window
        return self._verdict(count=self._incr(key), now=now, index=index)

    def _window(self, request: Any, view: Any) -> tuple[str, float, int] | None:
        """(counter key of the current window, now, window number), or None when not throttled."""
        if self.rate is None:
            return None
        base = self.get_cache_key(request, view)
        if base is None:
            return None
        now = self.timer()
        index = int(now // self._seconds)
        return f"{base}:{index}", now, index

    def _incr(self, key: str) -> int:
        """Count one request in the window; on a cache outage, in this process's fallback."""
        try:
            return self._incr_on(self.cache, key)
        except CACHE_ERRORS as error:
            cache_error_log.record(scope=self.scope, error=error)
            return self._incr_on(_local_cache, key)

    def _get(self, key: str) -> int:
        """The window's count so far; on a cache outage, this process's fallback count."""
        try:
            return int(self.cache.get(key, 0))
        except CACHE_ERRORS as error:
            cache_error_log.record(scope=self.scope, error=error)
            return int(_local_cache.get(key, 0))

    def _incr_on(self, cache: Any, key: str) -> int:
        cache.add(key, 0, timeout=self._seconds + 1)
        try:
            return cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.add(key, 1, timeout=self._seconds + 1)
            return 1

    def _verdict(self, *, count: int, now: float, index: int) -> bool:
        if count <= self._limit:
            return True
        self._wait = (index + 1) * self._seconds - now
        return False

    def wait(self) -> float | None:
        return None if self._wait is None else float(max(math.ceil(self._wait), 1))


class _OnceLog:
    """Logs one warning per process, the first time it is asked to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.done = False

    def warn(self, message: str, *args: object) -> None:
        with self._lock:
            if self.done:
                return
            self.done = True
        logger.warning(message, *args)


proxy_unconfigured_log = _OnceLog()


class ClientIpThrottle(FixedWindowThrottle):
    """Keyed on the client IP (``NUM_PROXIES`` decides which X-Forwarded-For entry is the client).

    ``DJANGO_NUM_PROXIES=0`` (the default) keys on the TCP peer: behind a load balancer that is
    the balancer, and every shopper shares one per-IP limit (600 payment sessions a minute = 10
    checkouts a second for the whole shop). A request that arrives with ``X-Forwarded-For`` while
    ``NUM_PROXIES`` is 0 logs ``throttle.proxy_unconfigured`` once per process."""

    def ident(self, request: Any, view: Any) -> str | None:
        if api_settings.NUM_PROXIES == 0 and "HTTP_X_FORWARDED_FOR" in request.META:
            proxy_unconfigured_log.warn(
                "throttle.proxy_unconfigured scope=%s remote_addr=%s: requests carry X-Forwarded-For but "
                "DJANGO_NUM_PROXIES=0, so every client behind the proxy shares one per-IP limit; set "
                "DJANGO_NUM_PROXIES to the number of proxies in front of the app",
                self.scope,
                request.META.get("REMOTE_ADDR", ""),
            )
        return self.get_ident(request)
