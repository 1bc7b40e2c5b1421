#!/usr/bin/env bash
# Rebuild the lock files from the direct pins, with every transitive package pinned and hashed:
#   requirements.txt      -> requirements.lock      (production: what the product runs on)
#   requirements-dev.txt  -> requirements-dev.lock  (demo, tests, lint, types; includes the above)
# Edit the .txt files (exact == pins of what we use directly), run this, commit all four.
# scripts/bootstrap.sh installs from requirements-dev.lock with --require-hashes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/pip-compile ] || { echo "run scripts/bootstrap.sh first (it installs pip-tools)"; exit 1; }
compile() {
  .venv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-header --no-emit-index-url --no-emit-find-links \
    --resolver=backtracking -o "$2" "$1"
}
compile requirements.txt requirements.lock
compile requirements-dev.txt requirements-dev.lock
echo "requirements.lock: $(grep -c '==' requirements.lock) packages; requirements-dev.lock: $(grep -c '==' requirements-dev.lock) packages"
