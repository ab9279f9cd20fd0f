#!/bin/sh
# Runs inside the guest at build time (a script step of the layer): no services are running here.
set -eu
echo engine > /etc/ost-role
systemctl enable nginx.service
# The database is installed, not started at boot: as on ost-images' engine-installed, where engine-setup
# initialises, enables and starts it. (Debian's package enables it on install; at boot it was 13-20 s of
# the engine's start under TCG, competing for the host's cores with the other VMs.) A variant of the set
# without it (the e2e tests' shared set) builds with the same script.
if [ -e /lib/systemd/system/postgresql.service ]; then systemctl disable postgresql.service; fi
