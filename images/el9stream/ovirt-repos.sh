#!/bin/sh
# oVirt master repositories, set up the way ost-images' provision scripts do (runs inside the guest at
# build time): the ovirt/ovirt-master-snapshot copr for this CentOS Stream release, then
# ovirt-release-master from it, which adds the rest of oVirt's repositories.
set -eu
. /etc/os-release
major=${VERSION_ID%%.*}
dnf copr enable -y ovirt/ovirt-master-snapshot "centos-stream-${major}"
dnf install -y dnf-utils ovirt-release-master
