#!/usr/bin/env bash
# Run the test suite (after tools/setup.sh). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/pytest ] || bash tools/setup.sh
exec .venv/bin/python -m pytest "$@"
