#!/bin/sh
# Selenium grid on the storage VM, as ost-images' configs/storage/setup_selenium_grid.sh prepares it (runs
# inside the guest at build time; needs the network): podman, container storage moved to the big /var/tmp
# partition, the three selenium images pulled, a world-writable artifacts dir, port 4444 open.
set -eu

images="quay.io/ovirt/selenium-standalone-chrome:latest
quay.io/ovirt/selenium-standalone-firefox:latest
quay.io/ovirt/selenium-video:latest"
artifacts=/var/tmp/selenium

dnf install -y podman

# /var/lib/containers/storage → /var/tmp/containers/storage (the root partition is only ~7G), labelled as
# the original location
sed -i 's|/var/lib/containers/storage|/var/tmp/containers/storage|g' /etc/containers/storage.conf
mkdir -p /var/tmp/containers/storage
semanage fcontext -a -e /var/lib/containers /var/tmp/containers
restorecon -R /var/tmp/containers || true   # SELinux is off in the build appliance; the layer is relabelled anyway

for image in $images; do
    podman pull "$image"
done

mkdir -p "$artifacts"
chmod 0777 "$artifacts"

# Selenium's port in the public zone. firewall-cmd needs the running daemon, which the build appliance does
# not have; firewall-offline-cmd edits the zone file directly, editing the XML is the fallback.
if ! firewall-offline-cmd --zone=public --add-port=4444/tcp --add-port=4444/udp; then
    zone=/etc/firewalld/zones/public.xml
    if [ ! -f "$zone" ]; then cp /usr/lib/firewalld/zones/public.xml "$zone"; fi
    if ! grep -q 'port="4444"' "$zone"; then
        sed -i 's|</zone>|  <port port="4444" protocol="tcp"/>\n  <port port="4444" protocol="udp"/>\n</zone>|' "$zone"
    fi
fi
