"""Production mode (DJANGO_DEBUG=false) refuses to start without a secret key, allowed hosts
and a real database; each case loads the settings in a fresh interpreter, as a server would."""

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
}
LOAD_SETTINGS = (
    "import django; from django.conf import settings; django.setup(); "
    "db = settings.DATABASES['default']; "
    "print(settings.DEBUG, settings.ALLOWED_HOSTS, db['ENGINE'], db['ATOMIC_REQUESTS'], db['CONN_MAX_AGE'])"
)


def _load(**overrides: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
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
        "False", "['shop.example.com']", "django.db.backends.postgresql", "False", "60"
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DJANGO_SECRET_KEY": None}, "DJANGO_SECRET_KEY must be set"),
        ({"DJANGO_SECRET_KEY": "dev-only-insecure-secret-key-change-me"}, "DJANGO_SECRET_KEY must be set"),
        ({"DJANGO_ALLOWED_HOSTS": None}, "DJANGO_ALLOWED_HOSTS must be set"),
        ({"DATABASE_URL": None}, "DATABASE_URL must point at PostgreSQL"),
        ({"DATABASE_URL": "sqlite:////tmp/shop.sqlite3"}, "DATABASE_URL must point at PostgreSQL"),
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
    env.update(DJANGO_SETTINGS_MODULE="config.settings", DJANGO_DEBUG="true", DATABASE_URL=f"sqlite:///{tmp_path}/demo.sqlite3")
    run = {"cwd": ROOT, "capture_output": True, "text": True, "timeout": 60}

    demo = subprocess.run([sys.executable, "-c", show], env={**env, "DEMO_DJSTRIPE_SYNCDB": "true"}, **run)  # noqa: S603
    default = subprocess.run([sys.executable, "-c", show], env=env, **run)  # noqa: S603

    assert demo.stdout.strip() == "{'djstripe': None}", demo.stderr
    assert default.stdout.strip() == "{}", default.stderr
