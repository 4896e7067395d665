#!/usr/bin/env bash
# The project's test command (README, and .ci/run calls exactly this):
#   bash tests/run.sh [pytest arguments]
# Installs what the tests need (pip packages; Debian's chromium for the browser tests,
# when run as root and it is missing), then runs the whole suite on the real data in
# ../shared/data (or $EXPLORER_SHARED_DATA).
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing Debian's chromium for the browser tests..."
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "warning: chromium is not installed (apt-get install chromium); browser tests will fail." >&2
    fi
fi

exec python -m pytest "$@"
