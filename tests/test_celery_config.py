"""Celery reliability settings: every task is time-limited, redelivery after a worker's death comes
within a minute, and never while the task may still be running elsewhere.

Config tests only (tests/webhooks/test_worker_death.py kills real workers): they load the real Celery
app with every task registered, in a fresh interpreter where the environment matters."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from config.celery import app

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tasks():
    for label in ("carts", "common", "orders", "payments", "webhooks"):
        importlib.import_module(f"{label}.tasks")  # what autodiscover_tasks imports in the worker
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def test_every_task_has_a_soft_and_a_hard_time_limit(tasks):
    assert tasks, "no tasks registered"
    for name, task in tasks.items():
        soft = task.soft_time_limit or app.conf.task_soft_time_limit
        hard = task.time_limit or app.conf.task_time_limit
        assert soft and hard and soft < hard, name


def test_time_limits_per_task_family(tasks):
    stripe_call = settings.STRIPE_TIMEOUT * (settings.STRIPE_MAX_NETWORK_RETRIES + 1)
    limits = {name: (task.soft_time_limit, task.time_limit) for name, task in tasks.items()}

    assert stripe_call == 30  # STRIPE_TIMEOUT=10, 2 network retries
    assert limits["orders.tasks.send_order_confirmation"] == (20, 30)
    assert limits["orders.tasks.send_order_notification"] == (20, 30)
    assert limits["webhooks.process_event"] == (stripe_call, stripe_call + 10)
    assert limits["payments.tasks.payment_method_save"] == (stripe_call, stripe_call + 10)
    assert limits["webhooks.reconcile_payments"] == (14 * 60, 14 * 60 + 30)  # runs every 15 minutes


def test_redelivery_settings(tasks):
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    visibility = conf.broker_transport_options["visibility_timeout"]
    acks_late_hard = [t.time_limit or conf.task_time_limit for t in tasks.values() if t.acks_late]

    assert visibility == 45  # with STRIPE_TIMEOUT=10 and 2 network retries
    assert max(acks_late_hard) < visibility  # a running task is never delivered a second time
    # periodic sweeps may run longer: acknowledged on receipt, the next beat tick runs them again
    long_tasks = [name for name, t in tasks.items() if (t.time_limit or conf.task_time_limit) >= visibility]
    assert long_tasks and all(not tasks[name].acks_late for name in long_tasks)
    assert all(entry["task"] in tasks for entry in settings.CELERY_BEAT_SCHEDULE.values())


def test_every_retry_countdown_stays_below_the_visibility_timeout(tasks):
    """A retry waits unacked in the worker for its countdown: one longer than the visibility
    timeout is delivered to a second worker while the first still holds it."""
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    backoffs = {name: task.retry_backoff_max for name, task in tasks.items() if getattr(task, "retry_backoff", False)}

    assert backoffs, "no task retries with a backoff"
    assert {name: cap for name, cap in backoffs.items() if cap >= visibility} == {}
    assert settings.WEBHOOK_RETRY_BACKOFF_MAX < visibility


def test_a_webhook_event_on_a_killed_worker_is_processed_within_a_minute(tasks):
    hard = tasks["webhooks.process_event"].time_limit
    lease = settings.WEBHOOK_PROCESSING_LEASE.total_seconds()
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    sweep = settings.CELERY_BEAT_SCHEDULE["sweep-webhook-inbox"]["schedule"]

    assert (hard, lease, visibility) == (40, 43, 45)
    assert hard < lease < visibility  # the redelivered message finds the lease expired and re-claims
    # kombu scans for unacked messages past the visibility timeout every interval x throttle seconds
    # (100 s by its defaults): every 5 s here, so a dead worker's message is back within 45 + 5 s
    options = app.conf.broker_transport_options
    restore_every = options["unacked_restore_interval"] * options["unacked_restore_throttle"]
    assert restore_every == 5
    assert options["unacked_mutex_expire"] <= restore_every  # a scanner killed holding the mutex
    assert visibility + restore_every < 60
    # without redelivery (the message lost), the sweep: lease + one sweep interval
    assert sweep == timedelta(seconds=15)
    assert lease + sweep.total_seconds() < 60
    # a retry's countdown waits unacked in the worker: below the visibility timeout
    assert settings.WEBHOOK_RETRY_BACKOFF_MAX < visibility
    # the sweep never re-enqueues an event still waiting for its retry plus one attempt
    assert settings.WEBHOOK_SWEEP_AFTER.total_seconds() > settings.WEBHOOK_RETRY_BACKOFF_MAX + hard


def test_worker_pool_defaults_to_prefork_with_two_children_per_cpu():
    """prefork enforces the time limits (solo and threads do not); two children per CPU measured best
    for webhook processing on 2 CPUs (docs/benchmarks.md, "Webhook worker")."""
    assert app.conf.worker_pool == "prefork"
    assert app.conf.worker_concurrency == 2 * (os.cpu_count() or 1)
    assert app.conf.worker_prefetch_multiplier == 1


def test_transport_options_reach_the_redis_channel():
    """kombu reads these names (an unknown one is silently ignored): check the channel got them."""
    from kombu.transport.redis import Channel

    for name in ("visibility_timeout", "unacked_restore_interval", "unacked_restore_throttle", "unacked_mutex_expire"):
        assert name in Channel.from_transport_options, name


def test_webhook_retries_span_what_they_did_before_the_resize():
    """25 retries of 5, 10, 20, then 40 s (cap below the 45 s visibility timeout) = the 18 retries of
    5, 10, 20, 40, then 60 s before: 915 s (about 15 minutes) without jitter."""
    countdowns = [
        min(settings.WEBHOOK_RETRY_BACKOFF * 2**n, settings.WEBHOOK_RETRY_BACKOFF_MAX)
        for n in range(settings.WEBHOOK_MAX_RETRIES)
    ]
    before = [min(5 * 2**n, 60) for n in range(18)]
    assert sum(countdowns) == sum(before) == 915


def _settings_run(**environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "WEBHOOK_", "STRIPE_"))}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.test", **environ)
    code = "import django; django.setup(); from django.conf import settings as s; print(s.CELERY_VISIBILITY_TIMEOUT)"
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_limits_follow_the_stripe_timeout():
    result = _settings_run(STRIPE_TIMEOUT="40")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(40 * 3 + 10 + 5)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CELERY_VISIBILITY_TIMEOUT": "40"}, "CELERY_VISIBILITY_TIMEOUT (40 s) must exceed"),
        ({"WEBHOOK_RETRY_BACKOFF_MAX": "600"}, "WEBHOOK_RETRY_BACKOFF_MAX (600 s) must stay below"),
        ({"WEBHOOK_RETRY_BACKOFF_MAX": "45"}, "WEBHOOK_RETRY_BACKOFF_MAX (45 s) must stay below"),
        ({"WEBHOOK_PROCESSING_LEASE": "40"}, "WEBHOOK_PROCESSING_LEASE must exceed"),
        ({"WEBHOOK_PROCESSING_LEASE": "45"}, "WEBHOOK_PROCESSING_LEASE (45 s) must stay below"),
    ],
)
def test_settings_refuse_a_redelivery_window_shorter_than_a_task(environ, message):
    result = _settings_run(**environ)

    assert result.returncode != 0
    assert message in result.stderr
