#!/usr/bin/env bash
# One command on a fresh machine: install everything, fetch a sched_ext kernel, build the
# kernel tree's example schedulers, and run scx_simple on it in QEMU.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
scripts/setup.sh
export PATH="$here/.venv/bin:$PATH"
ktstr kernel fetch 7.2
ktstr schedulers build --series 7.2
exec ktstr run --kernel 7.2 --scheduler scx_simple --topology 1,2,2,1 --duration 5 "$@"
