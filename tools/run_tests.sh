#!/usr/bin/env bash
# Installs what is missing (tools/install.sh), then runs the test suite.
#   bash tools/run_tests.sh            # the suite CI runs
#   bash tools/run_tests.sh --runslow  # plus the slow tests
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
PY=${PYTHON:-python3}
exec "$PY" -m pytest tests -q -ra "$@"
