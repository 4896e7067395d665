#!/usr/bin/env bash
# The project's test command (README, and .ci/run calls exactly this):
#   bash tests/run.sh [pytest arguments]      e.g.  bash tests/run.sh -m "not slow"
# Installs what the tests need (the project with its "test" extra; Debian's chromium for
# the browser tests, when run as root and it is missing), checks lint, format and types
# (ruff, mypy: a finding fails the run), then runs pytest on the real data in
# ../shared/data (or $EXPLORER_SHARED_DATA): the whole suite unless arguments say less.
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

echo "ruff check, ruff format --check, mypy..."
python -m ruff check --quiet .
python -m ruff format --check --quiet .
python -m mypy
exec python -m pytest "$@"
