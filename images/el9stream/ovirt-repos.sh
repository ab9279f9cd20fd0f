#!/bin/sh
# Enable the oVirt master repositories (runs inside the guest at build time).
set -eu
dnf install -y https://resources.ovirt.org/pub/yum-repo/ovirt-release-master.rpm
dnf config-manager --set-enabled crb || true
