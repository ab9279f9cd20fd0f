#!/usr/bin/env bash
# Install the system packages ost needs (only the missing ones), on Debian/Ubuntu (apt) or Fedora/EL (dnf).
# Uses sudo when not run as root. Then installs the npm dependencies and compiles the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# libguestfs-xfs: XFS in the appliance (EL guests' root); a Recommends of libguestfs0, so named here
APT_PKGS=(qemu-utils qemu-system-x86 libguestfs-tools libguestfs-xfs linux-image-amd64 debootstrap debian-archive-keyring openssh-client openssh-server
          virtinst libvirt-clients rpm rpm2cpio createrepo-c dnf tar cpio gpg iproute2 util-linux ca-certificates
          libvirt-daemon-system dnsmasq-base iptables ansible-core python3 curl)
DNF_PKGS=(qemu-img qemu-system-x86-core guestfs-tools kernel-core debootstrap debian-keyring openssh-clients openssh-server
          virt-install libvirt-client rpm-build rpm-sign createrepo_c dnf tar cpio gnupg2 iproute util-linux ca-certificates
          libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-driver-network dnsmasq iptables ansible-core)

if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    $SUDO apt-get update -q
    # no recommends: they pull virt-viewer, GTK and spice (~500 packages) that nothing here uses
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
elif command -v dnf >/dev/null 2>&1; then
  missing=()
  for p in "${DNF_PKGS[@]}"; do rpm -q "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    $SUDO dnf install -y --setopt=install_weak_deps=False "${missing[@]}"
  fi
else
  echo "error: neither apt-get nor dnf found; install by hand: ${APT_PKGS[*]}" >&2
  exit 1
fi

# libguestfs boots the host kernel: it must be readable (Ubuntu ships /boot/vmlinuz-* as 0600)
for k in /boot/vmlinuz-*; do
  [ -e "$k" ] && [ ! -r "$k" ] && $SUDO chmod 0644 "$k"
done

if ! command -v node >/dev/null 2>&1 || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  echo "error: Node.js >= 20 is required (found: $(node --version 2>/dev/null || echo none))" >&2
  echo "hint: install it from your distribution (Fedora: dnf install nodejs) or nodejs.org" >&2
  exit 1
fi

npm ci --no-audit --no-fund
npm run build
