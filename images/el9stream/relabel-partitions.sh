#!/bin/sh
# Relabel the separately mounted file systems of the ost-images partition layout (runs inside the guest as
# a layer's last step). ost-images does the same before virt-customize's --selinux-relabel, which on its
# own does not reach files written below these mount points (/var/tmp, /var/log, ...).
set -eu
type=targeted
if [ -r /etc/selinux/config ]; then
    t=$(sed -n 's/^SELINUXTYPE=//p' /etc/selinux/config)
    if [ -n "$t" ]; then type=$t; fi
fi
contexts=/etc/selinux/$type/contexts/files/file_contexts
dirs=
for d in /boot /home /var /var/log /var/log/audit /var/tmp; do
    if [ -d "$d" ]; then dirs="$dirs $d"; fi
done
# -F: force the full context, -m: do not read /proc/mounts (the appliance's view of it is not the guest's)
# shellcheck disable=SC2086
setfiles -F -m "$contexts" $dirs
