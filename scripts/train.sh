#!/usr/bin/env bash
# Set up (idempotent) and run the main job: `sgcd train` with its defaults (SGCD on airline-lite, SmolLM2-135M,
# offline summarizer, CPU). Extra arguments go to `sgcd train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sgcd train "$@"
