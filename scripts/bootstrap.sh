#!/usr/bin/env bash
# Create .venv and install requirements-dev.lock (every package pinned and hashed; rebuilt from
# the direct pins in requirements*.txt by scripts/lock.sh), again only when it changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
started=$(date +%s)
if [ ! -x .venv/bin/python ]; then
  echo "[install] creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements-dev.lock | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[install] installing $(grep -c '==' requirements-dev.lock) locked packages (requirements-dev.lock changed or first run)..."
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock
  echo "$want" > "$stamp"
  echo "[install] done in $(( $(date +%s) - started )) s"
else
  echo "[install] .venv is up to date"
fi
