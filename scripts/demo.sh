#!/usr/bin/env bash
# The demo on the bundled defaults: build images/debian12.yaml and boot a VM from its engine-installed
# layer until SSH answers with the set's key (qemu user-mode networking, SSH on a 127.0.0.1 port).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi   # debootstrap and chroot need root

$SUDO ./bin/ost build-images images/debian12.yaml
$SUDO ./bin/ost boot-image images/debian12.yaml engine-installed
