#!/usr/bin/env bash
# Set up everything ktstr needs on a Debian bookworm host (idempotent).
#
#   scripts/setup.sh            system packages + .venv with ktstr installed
#   KTSTR_SETUP_SKIP_APT=1      skip the system packages (non-root, or already done)
#
# System packages: QEMU 10 from bookworm-backports (QEMU 7.2's multi-threaded TCG
# corrupts guests), clang-22 for building the sched_ext example schedulers, busybox
# for the guest, workloads (stress-ng, rt-tests), gcc + libc6-dev (the static scenario
# guest agent, ktstr/guest/native), libjansson-dev (the agent links it statically),
# PostgreSQL for the service tests; the kernel build tools for `ktstr kernel build`
# (flex, bison, bc, dwarves for pahole/BTF, libelf-dev, libssl-dev).
# The backports entry reuses the mirror URI of the machine's own Debian sources.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

log() { printf '[setup] %s\n' "$*" >&2; }

apt_packages=(
  busybox-static cpio xz-utils zstd dpkg-dev
  stress-ng rt-tests
  clang-22 llvm-22 lld-22 libelf-dev zlib1g-dev libzstd-dev make gcc libc6-dev pkg-config
  libjansson-dev
  flex bison bc dwarves libssl-dev binutils perl
  postgresql openssh-server openssh-client slurm-wlm munge
  chromium
)

need_apt() {
  local p
  for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 0
  done
  qemu_major=$(qemu-system-x86_64 --version 2>/dev/null | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -1)
  [ "${qemu_major:-0}" -ge 10 ] || return 0
  return 1
}

debian_mirror() {
  # The URI of the machine's own Debian archive entry (deb822 or one-line format).
  local f uri=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' "$f")
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list)
  fi
  printf '%s' "$uri"
}

if [ "${KTSTR_SETUP_SKIP_APT:-0}" != 1 ] && need_apt; then
  if [ "$(id -u)" != 0 ]; then
    log "system packages missing and not root: run as root or install: qemu-system-x86 (>= 10) ${apt_packages[*]}"
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    mirror=$(debian_mirror)
    if [ -z "$mirror" ]; then
      log "cannot find the Debian mirror in /etc/apt/sources.list*; add bookworm-backports by hand"
      exit 1
    fi
    log "adding bookworm-backports (mirror from the system's own sources)"
    cat > /etc/apt/sources.list.d/ktstr-backports.sources <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  log "apt-get update"
  apt-get update -qq
  log "installing QEMU 10 from bookworm-backports"
  apt-get install -y -qq -t bookworm-backports qemu-system-x86 >/dev/null
  log "installing ${apt_packages[*]}"
  apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import ktstr; ktstr.__version__' 2>/dev/null || [ pyproject.toml -nt .venv/.ktstr-installed ]; then
  log "installing ktstr and its development tools into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch .venv/.ktstr-installed
fi
log "ready: $(.venv/bin/ktstr --version)"
