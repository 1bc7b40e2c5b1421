"""The ``/metrics`` registry: every counter of common.metrics plus the inbox gauges computed at scrape time.

The inbox gauges come from the database (one grouped count and one ``min``), so they are
right whatever process serves the scrape. Counters and histograms live in the process
that incremented them; with ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client's
``MultiProcessCollector`` merges the files every process (web and Celery workers of the
host) writes there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from webhooks import selectors

logger = logging.getLogger(__name__)


class InboxCollector(Collector):
    """checkout_webhook_inbox_events{status}, checkout_webhook_inbox_backlog, oldest pending age."""

    def collect(self) -> Iterator[Metric]:
        try:
            counts = selectors.webhook_inbox_counts()
            oldest = selectors.webhook_inbox_oldest_pending_age()
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the database blinked
            logger.warning("metrics.inbox_unavailable error=%s", type(exc).__name__)
            return
        by_status = GaugeMetricFamily(
            "checkout_webhook_inbox_events", "Webhook inbox rows by status (failed = dead letters).", labels=["status"]
        )
        for status, total in sorted(counts.items()):
            by_status.add_metric([status], total)
        yield by_status
        yield GaugeMetricFamily(
            "checkout_webhook_inbox_backlog",
            "Events stored but not yet processed (received + processing).",
            value=counts.get("received", 0) + counts.get("processing", 0),
        )
        yield GaugeMetricFamily(
            "checkout_webhook_inbox_oldest_pending_seconds",
            "Age of the oldest event waiting for processing (0 when none).",
            value=oldest,
        )


class _ProcessCollector(Collector):
    """This process's metrics (the default registry), for a single-process deployment."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def registry() -> CollectorRegistry:
    """A fresh registry per scrape: process (or multi-process) metrics + the inbox gauges."""
    scrape = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(scrape)
    else:
        scrape.register(_ProcessCollector())
    scrape.register(InboxCollector())
    return scrape


def exposition(*, accept: str) -> tuple[bytes, str]:
    """(body, content type) in the format the scraper asked for (OpenMetrics or text 0.0.4)."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry()), content_type
