#!/usr/bin/env bash
# Installs what vethlab's tests and its VM runner need on a Debian/Ubuntu host.
# Shared by .ci/run, the GitHub Actions workflow and users (see README).
# Idempotent: packages already present are left alone.
set -euo pipefail

packages=(
  iproute2            # `ip`, used only by tests that cross-check our netlink view
  nftables            # firewall backend (nft binary for debugging and residue checks)
  iptables            # iptables-nft, for comparing with runtimes that still use it
  iputils-ping        # a second opinion next to vethlab's own ICMP probe
  util-linux          # unshare, nsenter
  qemu-system-x86     # cargo xtask test-vm
  busybox-static      # the VM guest's userland
  xz-utils            # Debian 6.12 kernel modules are .ko.xz; 6.1's bzImage payload is xz
  zstd                # Debian 6.12's bzImage payload is zstd (vmlinux extraction)
  kmod                # depmod/modinfo for module load order
  make gcc libc6-dev flex bison bc libelf-dev  # test-vm --minimal-kernel builds a kernel
  containernetworking-plugins  # conformance: the CNI bridge plugin
  netavark            # conformance: podman's network backend
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "ci/install.sh: all packages present"
  exit 0
fi

echo "ci/install.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
