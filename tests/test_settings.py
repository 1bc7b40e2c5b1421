"""Production mode (DJANGO_DEBUG=false, config.settings.production) refuses to start without a
secret key, allowed hosts, a real database, real Stripe secrets and a metrics token; each case
loads the settings in a fresh interpreter, as a server would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "a-long-random-production-secret-0123456789",
    "DJANGO_ALLOWED_HOSTS": "shop.example.com",
    "DATABASE_URL": "postgres://shop@db.example.com:5432/shop",
    "STRIPE_API_KEY": "sk_live_FAKE-fixture-not-a-key",
    "STRIPE_WEBHOOK_SECRET": "whsec_FAKE-fixture-not-a-secret",
    "METRICS_TOKEN": "scrape-token-0123456789",
}
LOAD_SETTINGS = (
    "import django; from django.conf import settings; django.setup(); "
    "db = settings.DATABASES['default']; "
    "print(settings.DEBUG, settings.ALLOWED_HOSTS, db['ENGINE'], db['ATOMIC_REQUESTS'], db['CONN_MAX_AGE'])"
)


_OWN_VARIABLES = ("DJANGO_", "DATABASE_URL", "STRIPE_", "METRICS_", "DEMO_")


def _load(**overrides: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_VARIABLES)}
    env.update(PRODUCTION, DJANGO_SETTINGS_MODULE="config.settings")
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", LOAD_SETTINGS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_production_settings_load_when_everything_is_set():
    result = _load()

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "False",
        "['shop.example.com']",
        "django_prometheus.db.backends.postgresql",
        "False",
        "60",
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DJANGO_SECRET_KEY": None}, "DJANGO_SECRET_KEY must be set"),
        ({"DJANGO_SECRET_KEY": "dev-only-insecure-secret-key-change-me"}, "DJANGO_SECRET_KEY must be set"),
        ({"DJANGO_ALLOWED_HOSTS": None}, "DJANGO_ALLOWED_HOSTS must be set"),
        ({"DATABASE_URL": None}, "DATABASE_URL must point at PostgreSQL"),
        ({"DATABASE_URL": "sqlite:////tmp/shop.sqlite3"}, "DATABASE_URL must point at PostgreSQL"),
        ({"STRIPE_API_KEY": None}, "STRIPE_API_KEY must be set to a Stripe secret key"),
        (
            {"STRIPE_API_KEY": "sk_test_localstripe000000000000000000"},
            "STRIPE_API_KEY must be set to a Stripe secret key",
        ),
        (
            {"STRIPE_API_KEY": "pk_live_51Hshop0000000000000000000000"},
            "STRIPE_API_KEY must be set to a Stripe secret key",
        ),
        ({"STRIPE_WEBHOOK_SECRET": None}, "STRIPE_WEBHOOK_SECRET (whsec_...) must be set"),
        ({"STRIPE_WEBHOOK_SECRET": "not-a-webhook-secret"}, "STRIPE_WEBHOOK_SECRET (whsec_...) must be set"),
        ({"METRICS_TOKEN": None}, "METRICS_TOKEN must be set"),
        ({"METRICS_TOKEN": ""}, "METRICS_TOKEN must be set"),
        ({"DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO"}, "DJANGO_SECURE_PROXY_SSL_HEADER must be"),
        # The explicit module refuses the same, whatever DJANGO_DEBUG says.
        (
            {"DJANGO_SETTINGS_MODULE": "config.settings.production", "DJANGO_DEBUG": None, "STRIPE_API_KEY": None},
            "STRIPE_API_KEY must be set to a Stripe secret key",
        ),
        ({"DJANGO_ENV": "production", "DJANGO_DEBUG": "true", "METRICS_TOKEN": None}, "METRICS_TOKEN must be set"),
        # Development settings never run with DEBUG off (that would be production without its checks).
        ({"DJANGO_SETTINGS_MODULE": "config.settings.development"}, "DJANGO_DEBUG=false needs the production settings"),
        ({"DJANGO_ENV": "staging"}, "DJANGO_ENV must be one of"),
        # The demo's shortcut past dj-stripe's migrations never reaches a real database.
        ({"DEMO_DJSTRIPE_SYNCDB": "true"}, "DEMO_DJSTRIPE_SYNCDB is for the demo's SQLite database only"),
        (
            {"DEMO_DJSTRIPE_SYNCDB": "true", "DATABASE_URL": "sqlite:////tmp/shop.sqlite3"},
            "DEMO_DJSTRIPE_SYNCDB is for the demo only",
        ),
        (
            {"DEMO_DJSTRIPE_SYNCDB": "true", "DJANGO_DEBUG": "true"},
            "DEMO_DJSTRIPE_SYNCDB is for the demo's SQLite database only",
        ),
    ],
)
def test_production_settings_refuse_to_start_without(overrides, message):
    result = _load(**overrides)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_demo_syncdb_skips_only_dj_stripes_migrations_on_the_demo_sqlite_database(tmp_path):
    show = "import django; from django.conf import settings; django.setup(); print(settings.MIGRATION_MODULES)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "DEMO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings", DJANGO_DEBUG="true", DATABASE_URL=f"sqlite:///{tmp_path}/demo.sqlite3"
    )
    run = {"cwd": ROOT, "capture_output": True, "text": True, "timeout": 60}

    demo = subprocess.run([sys.executable, "-c", show], env={**env, "DEMO_DJSTRIPE_SYNCDB": "true"}, **run)  # noqa: S603
    default = subprocess.run([sys.executable, "-c", show], env=env, **run)  # noqa: S603

    assert demo.stdout.strip() == "{'djstripe': None}", demo.stderr
    assert default.stdout.strip() == "{}", default.stderr


@pytest.mark.parametrize(
    "key", ["sk_live_FAKE-fixture-not-a-key", "sk_test_FAKE-fixture-not-a-key", "rk_live_FAKE-fixture"]
)
def test_production_settings_accept_standard_and_restricted_stripe_keys(key):
    result = _load(STRIPE_API_KEY=key)

    assert result.returncode == 0, result.stderr


def test_production_settings_without_metrics_need_no_metrics_token():
    result = _load(METRICS_ENABLED="false", METRICS_TOKEN=None)

    assert result.returncode == 0, result.stderr


SHOW_SECURITY = (
    "import django; from django.conf import settings; django.setup(); "
    "print(settings.SECURE_PROXY_SSL_HEADER, settings.SECURE_SSL_REDIRECT, settings.SESSION_COOKIE_SECURE, "
    "settings.CSRF_COOKIE_SECURE, settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
    "settings.SECURE_HSTS_PRELOAD, settings.SECURE_CONTENT_TYPE_NOSNIFF, settings.X_FRAME_OPTIONS, "
    "settings.CSRF_TRUSTED_ORIGINS, sep='|')"
)


def _show_security(**overrides: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_VARIABLES)}
    env.update(PRODUCTION, DJANGO_SETTINGS_MODULE="config.settings", **overrides)
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", SHOW_SECURITY], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split("|")


def test_production_security_defaults_are_https_behind_a_proxy():
    assert _show_security() == [
        "('HTTP_X_FORWARDED_PROTO', 'https')",
        "True",
        "True",
        "True",
        "31536000",
        "True",
        "True",
        "True",
        "DENY",
        "[]",
    ]


def test_production_security_settings_come_from_the_environment():
    shown = _show_security(
        DJANGO_SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_SSL,on",
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_SESSION_COOKIE_SECURE="false",
        DJANGO_CSRF_COOKIE_SECURE="false",
        DJANGO_SECURE_HSTS_SECONDS="3600",
        DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
        DJANGO_SECURE_HSTS_PRELOAD="false",
        DJANGO_SECURE_CONTENT_TYPE_NOSNIFF="false",
        DJANGO_X_FRAME_OPTIONS="SAMEORIGIN",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://shop.example.com,https://admin.example.com",
    )

    assert shown == [
        "('HTTP_X_FORWARDED_SSL', 'on')",
        "False",
        "False",
        "False",
        "3600",
        "False",
        "False",
        "False",
        "SAMEORIGIN",
        "['https://shop.example.com', 'https://admin.example.com']",
    ]


def test_production_without_a_proxy_header_trusts_no_header():
    assert _show_security(DJANGO_SECURE_PROXY_SSL_HEADER="")[0] == "None"


def test_manage_py_check_deploy_passes_with_a_complete_production_environment():
    """No database is reached: ``check --deploy`` runs no database checks (port 1 answers nothing)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_VARIABLES)}
    env.update(
        PRODUCTION,
        DJANGO_SECRET_KEY="prod-" + "k3y-" * 12 + "0123456789abcdef",  # 50+ characters, as check --deploy asks
        DATABASE_URL="postgres://shop@127.0.0.1:1/shop",
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py's own default

    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_manage_py_check_deploy_fails_on_a_weak_production_setting():
    """The check above can fail: a short secret key is a deploy warning, and warnings fail the run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_VARIABLES)}
    env.update(PRODUCTION, DATABASE_URL="postgres://shop@127.0.0.1:1/shop", DJANGO_SECURE_HSTS_SECONDS="0")
    env.pop("DJANGO_SETTINGS_MODULE", None)

    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode != 0
    assert "security.W009" in result.stderr + result.stdout  # the 42-character key
    assert "security.W004" in result.stderr + result.stdout  # no HSTS


def test_metrics_answer_404_when_disabled(client, settings):
    settings.METRICS_ENABLED = False

    response = client.get("/metrics")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_metrics_answer_when_enabled(client, settings):
    settings.METRICS_ENABLED = True
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics").status_code == 200
