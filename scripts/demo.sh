#!/usr/bin/env bash
# One command for the demo: venv, install, migrate, demo data, staff user, localstripe,
# webhook registration, Celery worker (when Redis answers), web server on 127.0.0.1:8000.
# Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m devtools.demo "$@"
