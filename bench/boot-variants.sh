#!/bin/bash
# Boot-time probe of guest-side variants of one built layer, one VM alone under `ost boot-image` (user-mode
# networking, SSH forwarded on 127.0.0.1: no libvirt, no guest network beyond qemu's), rounds alternating
# between the variants. A variant is NAME=ARGS: ARGS are appended to the kernel command line of an overlay
# of the layer (GRUB's config regenerated in it); the word `lean-initrd` in ARGS instead makes its initramfs
# with MODULES=list (virtio, SCSI disk and PATA modules only). Per boot: boot-image's time to SSH, systemd-analyze's
# kernel + userspace, the guest's user+system CPU seconds at that moment (/proc/stat) and the qemu process's
# CPU seconds until it exits. Compare within one run: this machine's speed drifts by tens of percent an hour.
# Usage (root): bench/boot-variants.sh <layer.qcow2> <private key> <rounds> NAME=ARGS [NAME=ARGS ...]
#   e.g. bench/boot-variants.sh build/debian12/debian12-host-installed.qcow2 build/debian12/debian12_id_rsa 3 \
#          base= mitoff=mitigations=off lean='mitigations=off init_on_alloc=0 lean-initrd'
set -euo pipefail
layer=$(realpath "$1") key=$(realpath "$2") rounds=$3
shift 3
ost=$(dirname "$(realpath "$0")")/../bin/ost
work=$(mktemp -d /var/tmp/ost-boot-variants-XXXXXX)
trap 'rm -rf "$work"' EXIT
export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg

prepare() { # name args → $work/name.qcow2.pristine, never booted
  local img=$work/$1.qcow2 args=${2//lean-initrd/}
  qemu-img create -q -f qcow2 -F qcow2 -b "$layer" "$img"
  {
    echo 'set -e'
    # appended inside GRUB_CMDLINE_LINUX="…" of ost's GRUB snippet
    echo "sed -i 's|^\\(GRUB_CMDLINE_LINUX=\".*\\)\"\$|\\1 ${args}\"|' /etc/default/grub.d/50-ost.cfg"
    if [[ $2 == *lean-initrd* ]]; then
      echo 'echo MODULES=list > /etc/initramfs-tools/conf.d/50-probe.conf'
      echo 'printf "%s\n" virtio_pci virtio_blk virtio_scsi sd_mod ata_piix ata_generic > /etc/initramfs-tools/modules'
      echo 'update-initramfs -u -k all'
    fi
    echo 'update-grub'
  } > "$work/edit.sh"
  printf 'upload %s /root/probe-edit.sh\ncommand "sh /root/probe-edit.sh"\nrm /root/probe-edit.sh\n' "$work/edit.sh" |
    guestfish -a "$img" -i > /dev/null
  mv "$img" "$img.pristine"
}

qemu_cpu() { # CPU seconds of the newest qemu-system-x86_64, last seen before it exits
  local pid= last=0 v
  for _ in $(seq 1 600); do pid=$(pgrep -n -f '^qemu-system-x86_64') && break; sleep 0.1; done
  [ -n "$pid" ] || { echo none; return; }
  while v=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2> /dev/null); do last=$v; sleep 0.2; done
  awk -v t="$last" 'BEGIN { printf "%.1f", t / 100 }'
}

for v in "$@"; do prepare "${v%%=*}" "${v#*=}"; done
echo "| round | variant | SSH (boot-image) | kernel | userspace | guest CPU (user+sys) | qemu CPU |"
echo "|---|---|---|---|---|---|---|"
for r in $(seq 1 "$rounds"); do
  for v in "$@"; do
    n=${v%%=*}
    cp "$work/$n.qcow2.pristine" "$work/$n.qcow2"
    qemu_cpu > "$work/cpu" &
    json=$("$ost" boot-image --image "$work/$n.qcow2" --key "$key" --json \
      --command 'systemd-analyze | head -1; head -1 /proc/stat')
    wait
    node -e '
      const j = JSON.parse(process.argv[1]);
      const [sa, stat] = j.commandOutput.split("\n");
      const t = (re) => (sa.match(re) ?? [])[1] ?? "?";
      const c = stat.trim().split(/\s+/).map(Number);
      console.log(`| ${process.argv[2]} | ${process.argv[3]} | ${(j.bootToSshMs / 1000).toFixed(1)} s | ` +
        `${t(/([\d.]+)s \(kernel\)/)} s | ${t(/([\d.]+)s \(userspace\)/)} s | ${((c[1] + c[3]) / 100).toFixed(1)} s | ` +
        `${process.argv[4]} s |`);
    ' "$json" "$r" "$n" "$(cat "$work/cpu")"
  done
done
