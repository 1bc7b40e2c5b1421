#!/usr/bin/env bash
# Run the whole test suite against PostgreSQL (and Redis for the Celery worker tests).
#   DATABASE_URL  default postgres://postgres@127.0.0.1:5432/checkout
#   REDIS_URL     default redis://127.0.0.1:6379/0
# Extra arguments go to pytest, e.g. scripts/test.sh tests/carts -x
# Before the tests: migrations are complete, ruff (lint and format) and mypy find nothing; tests/test_architecture.py
# checks the app dependency direction.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/checkout}
export TEST_REDIS_URL=${TEST_REDIS_URL:-${REDIS_URL:-redis://127.0.0.1:6379/0}}
unset REDIS_URL CELERY_BROKER_URL STRIPE_API_BASE
.venv/bin/python -m devtools.preflight --database "$DATABASE_URL" --redis "$TEST_REDIS_URL"
.venv/bin/python manage.py makemigrations --check --dry-run
# Lint (pyproject.toml [tool.ruff]): a lint error fails the run before any test.
.venv/bin/ruff check --quiet . || { echo "ruff check failed: fix the findings above (.venv/bin/ruff check --fix fixes many)"; exit 1; }
.venv/bin/ruff format --check --quiet . || { echo "ruff format --check failed: run .venv/bin/ruff format ."; exit 1; }
# Types (pyproject.toml [tool.mypy], django-stubs, djangorestframework-stubs): the product apps.
.venv/bin/mypy carts catalog common customers orders payments webhooks backoffice storefront config \
  || { echo "mypy failed: fix the type errors above"; exit 1; }
exec .venv/bin/python -m pytest "$@"
