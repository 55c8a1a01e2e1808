#!/usr/bin/env bash
# Installs what is missing (tools/install.sh), then runs the test suite.
#   bash tools/run_tests.sh            # the suite CI runs
#   bash tools/run_tests.sh --runslow  # plus the slow tests
#   PYTHON=/path/to/python bash tools/run_tests.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
PY=${PYTHON:-python3}
# --durations: the slowest tests are listed at the end of every run
exec "$PY" -m pytest tests -q -ra --durations=15 "$@"
