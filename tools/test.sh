#!/usr/bin/env bash
# Run the test suite, installing its tools first when they are missing. Extra arguments go to
# pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
sha256sum --status -c .venv/.clp-test-tools 2>/dev/null && [ -x .venv/bin/pytest ] ||
    bash tools/setup.sh --test
exec .venv/bin/python -m pytest "$@"
