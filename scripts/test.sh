#!/usr/bin/env bash
# Set up, then run the whole test suite on the CPU. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
# Bytecode caches for the package and the tests, even where the environment turns them off:
# the pytest-xdist workers and some twenty subprocesses import them, and each would otherwise
# compile every source file again (about 5 s per worker). __pycache__/ is git-ignored.
unset PYTHONDONTWRITEBYTECODE
status=0
.venv/bin/python -m pytest -q -n auto --dist worksteal "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: treat as a failure" >&2
  exit 1
fi
exit "$status"
