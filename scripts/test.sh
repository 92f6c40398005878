#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite: lint, the main suite, then the verl plugin's suite in its own
# venv. Exits non-zero on any failure. Arguments go to the main pytest run (and then the verl run is skipped).
#
# Every optional component is installed here (browser, AppWorld venv, the official tau2 evaluator, the verl venv),
# so SGCD_STRICT_SKIPS=1 turns any skip other than `gpu`/`llm` (no GPU, no real LLM endpoint) into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

SGCD_EXTRAS=${SGCD_EXTRAS:-dev,tau,trl} bash scripts/setup.sh
bash scripts/setup_browser.sh
bash scripts/appworld_setup.sh
bash scripts/tau_ref_setup.sh
bash scripts/verl_setup.sh

export SGCD_STRICT_SKIPS=1
export SGCD_TAU_REF_PYTHON="$PWD/.venv-tau-ref/bin/python"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

lint_paths="src tests examples"
.venv/bin/ruff check $lint_paths
.venv/bin/ruff format --check $lint_paths

if [ $# -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi
.venv/bin/python -m pytest --ignore=tests/integrations/verl
.venv-verl/bin/python -m pytest tests/integrations/verl
