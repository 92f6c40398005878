#!/usr/bin/env bash
# Install Debian's chromium for the report's browser tests (`pytest -m browser`). Idempotent: does nothing when
# chromium is already on PATH. Needs root (or sudo) for apt-get; no other network access.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    echo "setup_browser: chromium present ($(command -v chromium))"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup_browser: installing chromium with apt-get"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium
echo "setup_browser: done ($(command -v chromium))"
