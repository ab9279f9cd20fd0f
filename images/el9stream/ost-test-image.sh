#!/bin/sh
# The small guest image OST's tests upload into oVirt. ost-images puts oVirt TinyCore 13.12 (a qcow2 still
# named cirros.img) into /usr/share/ovirt-system-tests/ of the engine-installed and he-installed layers.
# Runs inside the guest at build time; needs the network.
set -eu
url=https://github.com/oVirt/ovirt-tinycore-linux/releases/download/v13.13/oVirtTinyCore64-13.12.qcow2
dir=/usr/share/ovirt-system-tests
mkdir -p "$dir"
curl -fsSL --retry 3 -o "$dir/cirros.img.part" "$url"
# every qcow2 file starts with the magic "QFI\373"
if [ "$(head -c 3 "$dir/cirros.img.part")" != QFI ]; then
    echo "ost-test-image: $url did not give a qcow2 image" >&2
    rm -f "$dir/cirros.img.part"
    exit 1
fi
mv "$dir/cirros.img.part" "$dir/cirros.img"
chown root:root "$dir/cirros.img"
chmod 0644 "$dir/cirros.img"
