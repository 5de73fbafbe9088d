#!/usr/bin/env bash
# Run the test suite, installing its tools first when they are missing. Extra arguments go to
# pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/.clp-test-tools ] && [ -x .venv/bin/pytest ] || bash tools/setup.sh --test
exec .venv/bin/python -m pytest "$@"
