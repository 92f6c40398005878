#!/usr/bin/env bash
# Set up .venv-verl: a second virtual environment for the verl plugin (sgcd.integrations.verl) and its tests.
#
# Why a second venv: verl 0.9.x pins transformers>=5.5.3,<5.11 and tensordict<=0.10.0 and pulls ray, hydra,
# datasets, peft, wandb...; the main .venv runs a newer transformers that other parts of sgcd rely on.
# Same shape as scripts/setup.sh: torch==2.13.0 first (a local CPU wheel here; never unpinned torch, which would
# pull a multi-GB CUDA build), then the package (editable) with the verl and dev extras. The verl extra also
# lists verl's undeclared CPU import deps (cachetools uvicorn fastapi transferqueue).
# Idempotent: a second run with unchanged inputs does nothing.
#
#   bash scripts/verl_setup.sh
#   .venv-verl/bin/python -m pytest tests/integrations/verl -q
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=${SGCD_VERL_VENV:-.venv-verl}
PIP="$VENV/bin/python -m pip"

want=$(cat pyproject.toml scripts/verl_setup.sh | sha256sum | cut -c1-16)
stamp="$VENV/.sgcd-verl-setup"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "verl_setup: up to date ($VENV)"
    exit 0
fi

start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
    echo "verl_setup: creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
$VENV/bin/python -c "import torch" 2>/dev/null || { echo "verl_setup: installing torch==2.13.0"; $PIP install -q torch==2.13.0; }
echo "verl_setup: installing sgcd[verl,dev] (verl and its dependencies; a few minutes from scratch)"
$PIP install -q -e ".[verl,dev]"
# Fail here, not in a test, if verl does not import on this machine.
$VENV/bin/python -W ignore -c "import verl, sgcd.integrations.verl as p; print(\"verl_setup: verl\", p.check_verl_version())" 2>/dev/null \
    || $VENV/bin/python -c "import verl, sgcd.integrations.verl as p; p.check_verl_version()"
echo "$want" > "$stamp"
echo "verl_setup: done in $(( $(date +%s) - start ))s"
