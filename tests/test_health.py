"""Health probes: /health/live (process up) and /health/ready (database and broker)."""

from __future__ import annotations

import socket

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_live(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@override_settings(CELERY_BROKER_URL="")
def test_ready_without_broker_configured(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "not_configured"}}


def test_ready_is_503_when_broker_unreachable(client):
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{_closed_port()}/0"):
        response = client.get("/health/ready")
    assert response.status_code == 503
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("api_error", "not_ready", None)
    assert error["checks"] == {"database": "ok", "broker": "unavailable"}
    assert "broker" in error["message"]


def test_health_needs_no_auth_even_with_a_bad_token(client):
    assert client.get("/health/live", HTTP_AUTHORIZATION="Bearer nope").status_code == 200
