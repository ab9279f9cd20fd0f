#!/usr/bin/env bash
# The demo on the bundled defaults:
#  1. build images/debian12.yaml (layered qcow2 images)
#  2. pack each layer into an RPM, verify, and publish the set to a local DNF repository
#  3. dnf-install ost-images-debian12-engine-installed into a scratch root (the base comes by dependency)
#  4. boot a VM from the installed file and log in over SSH with the private key from the base RPM
#     (qemu user-mode networking, SSH forwarded to a 127.0.0.1 port)
#  5. ost up demo-suite from the installed images, SSH between the VMs, ost down (scripts/demo-up.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi   # debootstrap, chroot and dnf --installroot need root

REPO="${OST_DEMO_REPO:-$PWD/build/repo}"
ROOT="${OST_DEMO_ROOT:-/var/tmp/ost-demo-root}"   # qemu (user libvirt-qemu) must reach it: not under /root

$SUDO ./bin/ost build-images images/debian12.yaml --publish "$REPO"
$SUDO rm -rf "$ROOT"
$SUDO dnf -y -q --installroot="$ROOT" --releasever=1 --setopt=reposdir=/nonexistent --nogpgcheck \
  --disableplugin='*' --repofrompath="ost-demo,file://$REPO" install ost-images-debian12-engine-installed \
  ost-images-debian12-host-installed
$SUDO rpm --root "$ROOT" -qa 'ost-images-*'
IMAGES="$ROOT/usr/share/ost-images"
$SUDO ./bin/ost boot-image --image "$IMAGES/debian12-engine-installed.qcow2" --key "$IMAGES/debian12_id_rsa"
# 5. the launcher: ost up demo-suite (engine + host-0 on two networks), SSH, ost down
./scripts/demo-up.sh
