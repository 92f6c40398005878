#!/usr/bin/env bash
# Set up AppWorld in its own virtual environment, .venv-appworld in the checkout (AppWorld pins pydantic<2 and old
# FastAPI/SQLAlchemy, so it can never share .venv). Installs appworld==0.1.3.post1 and runs `appworld install`,
# which decrypts the app code shipped in the wheel (offline). Idempotent: a second run with nothing changed only
# checks. The benchmark data is NOT fetched here (it needs internet and may not be redistributed):
#   .venv-appworld/bin/appworld download data --root DIR && export APPWORLD_ROOT=DIR
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${APPWORLD_PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv-appworld
VERSION=0.1.3.post1
want="appworld==$VERSION $(sha256sum scripts/appworld_setup.sh | cut -c1-16)"
stamp="$VENV/.sgcd-appworld-setup"

installed() { compgen -G "$VENV/lib/python3*/site-packages/appworld/apps/supervisor/apis.py" >/dev/null; }

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && installed; then
    echo "appworld_setup: up to date ($VENV)"
    exit 0
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "appworld_setup: AppWorld needs Python >= 3.11; set APPWORLD_PYTHON to one" >&2
    exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "appworld_setup: creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
echo "appworld_setup: installing appworld==$VERSION"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "appworld==$VERSION" 2> >(grep -v '^WARNING: Location' >&2)
echo "appworld_setup: appworld install (decrypts the bundled app code, offline)"
"$VENV/bin/appworld" install >/dev/null
installed || { echo "appworld_setup: appworld install did not produce the apps" >&2; exit 1; }
echo "$want" > "$stamp"
echo "appworld_setup: done"
