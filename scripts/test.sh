#!/usr/bin/env bash
# The one test command (CI runs exactly this through .ci/run).
#
#   scripts/test.sh                 setup, lint, type-check, then every test tier
#   scripts/test.sh -m 'not vm'     extra arguments go to pytest
#
# The VM tier boots real Debian kernels with real sched_ext schedulers in QEMU; kernels
# and scheduler builds are cached under ~/.cache/ktstr, so only the first run downloads
# (~300 MB) and builds (~1 minute).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

scripts/setup.sh
export PATH="$here/.venv/bin:$PATH"

echo "[test] ruff"; ruff check ktstr tests benchmarks scripts
echo "[test] mypy"; mypy

echo "[test] kernels and schedulers for the VM tier (cached)"
ktstr kernel fetch 7.2 7.3 6.12
ktstr schedulers build --series 7.2
ktstr schedulers build --series 7.3

echo "[test] pytest"
exec pytest -p no:cacheprovider -n "${KTSTR_TEST_JOBS:-2}" --durations=15 "$@" tests
