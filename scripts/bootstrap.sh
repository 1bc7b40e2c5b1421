#!/usr/bin/env bash
# Create .venv and install the pinned requirements (again only when they changed).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
started=$(date +%s)
if [ ! -x .venv/bin/python ]; then
  echo "[install] creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[install] installing $(grep -cv '^\s*\(#\|-r\|$\)' requirements.txt requirements-dev.txt | awk -F: '{n+=$2} END {print n}') pinned packages and their dependencies (requirements*.txt changed or first run)..."
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
  echo "[install] done in $(( $(date +%s) - started )) s"
else
  echo "[install] .venv is up to date"
fi
