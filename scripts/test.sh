#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite: lint, then pytest. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
SGCD_EXTRAS=${SGCD_EXTRAS:-dev} bash scripts/setup.sh
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
.venv/bin/python -m pytest "$@"
