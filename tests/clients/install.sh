#!/usr/bin/env bash
# Installs the independent SSE clients that tests/clients/run.sh drives:
# Debian's Chromium, the npm packages of package-lock.json (eventsource,
# playwright-core) and a Python venv with httpx + httpx-sse + pytest.
#
# Idempotent. Meant for root on Debian 12 (bookworm); needs only the
# package registries (Debian, npm, PyPI). Playwright's own browser download
# is never used: the tests launch /usr/bin/chromium.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
export DEBIAN_FRONTEND=noninteractive

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update
    apt_updated=1
  fi
  apt-get install -y "$@"
}

# Browser: only when missing.
if [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi

# Node.js (the machine image ships Node 20; Debian's nodejs is the fallback).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi
npm ci --no-audit --no-fund

# Python venv (Debian's python3 needs python3-venv for ensurepip).
if ! command -v python3 >/dev/null; then
  apt_install python3 python3-venv
fi
if [ ! -x .venv/bin/python ]; then
  rm -rf .venv
  if ! python3 -m venv .venv; then
    rm -rf .venv
    apt_install python3-venv
    python3 -m venv .venv
  fi
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt

echo "tests/clients: chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'), node $(node --version), $(.venv/bin/python --version)"
