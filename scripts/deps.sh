#!/usr/bin/env bash
# Install the Debian packages airmesh needs, only those that are missing. Idempotent and quiet
# when everything is present. Needs root (or sudo) only when something is missing.
set -euo pipefail

PKGS=(
  # build
  bazel-bootstrap bazel-rules-java gcc make pkg-config protobuf-c-compiler libprotobuf-dev
  # libraries (design card + ARCHITECTURE.md §11)
  libgrpc-dev libprotobuf-c-dev libh2o-evloop-dev libwslay-dev libssl-dev liblmdb-dev
  libgit2-dev libwolfssl-dev libseccomp-dev libzstd-dev libjansson-dev libyaml-dev
  libargon2-dev libcurl4-openssl-dev libcmocka-dev
  # runner: the fetch-back helper runs the host's git inside the pod's sandbox
  git
  # tests: independent checkers and clients
  openssl curl python3 python3-grpcio procps iproute2
  # console build (ui/) and its browser tests (tests/e2e/)
  nodejs npm chromium
  # benchmarks: baselines
  bubblewrap
  # the appliance image (make image, tests/image): build and boot under UEFI
  mmdebstrap erofs-utils cryptsetup-bin systemd-boot-efi dosfstools mtools fdisk binutils cpio zstd
  qemu-system-x86 ovmf
)
[ "${1:-}" = "--list" ] && { printf '%s\n' "${PKGS[@]}"; exit 0; }

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' && continue
  # NodeSource's nodejs bundles npm (and conflicts with Debian's npm): a working npm will do.
  [ "$p" = npm ] && command -v npm >/dev/null 2>&1 && continue
  missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
