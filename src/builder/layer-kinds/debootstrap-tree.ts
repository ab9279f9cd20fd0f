// The debootstrapped tree of a debootstrap base, before it is packed into a disk: the files it gets (fstab,
// DHCP on every NIC, serial console, SSH host key made at first boot, root's SSH key from a systemd
// credential, the readiness marker, no docs), the units masked in it and the documentation pruned from it.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { removeTree } from '../../core/fsutil.js';
import { SYSTEM_CREDENTIALS_DIR } from '../../guest/credentials.js';
import { READY_MARKER } from '../../guest/ready.js';
import type { DebootstrapBase } from '../plan/model.js';

/** The root filesystem's label (the tree's fstab mounts it by label). */
export const ROOT_LABEL = 'ost-root';

/**
 * systemd-networkd: DHCPv4 and DHCPv6 (+RA) on every NIC. eth0 (the management NIC) names the guest from
 * DHCP and carries the default route and the search domain; the others take addresses only (OST's images
 * set never-default on eth1+). DHCPv6 asks with a DUID-LL of the NIC's MAC (`DUIDType=link-layer`, as OST's
 * NetworkManager `ipv6.dhcp-duid=ll`): OST's networks reserve each IPv6 address for `id='0:3:0:1:<mac>'`,
 * and networkd's default DUID-EN would get a dynamic address instead of the one OST's `hosts` file names.
 */
export function networkdFiles(): Record<string, string> {
  return {
    '/etc/systemd/network/70-ost-eth0.network': [
      '[Match]',
      'Name=eth0',
      '',
      '[Network]',
      'DHCP=yes',
      'IPv6AcceptRA=yes',
      '',
      '[DHCPv4]',
      'UseDomains=yes',
      '',
      '[DHCPv6]',
      'DUIDType=link-layer',
      '',
    ].join('\n'),
    // networkd cannot name the guest itself here: hostnamed asks polkit, which a minimal Debian lacks (and
    // polkitd does not configure under debootstrap). A oneshot takes the name from eth0's DHCP lease.
    '/usr/local/sbin/ost-dhcp-hostname': [
      '#!/bin/sh',
      "# Name the guest as DHCP on eth0 says (OST: ost-<suite>-<vm>), from networkd's lease file. eth0 may be",
      '# online (IPv6) before its DHCPv4 lease is in: wait for the lease up to 30 s; a lease without a name',
      '# (user-mode networking) leaves the name as it is.',
      'idx=$(cat /sys/class/net/eth0/ifindex) || exit 0',
      'lease=/run/systemd/netif/leases/$idx',
      'i=0',
      'while [ ! -s "$lease" ] && [ "$i" -lt 60 ]; do',
      '  i=$((i + 1))',
      '  sleep 0.5',
      'done',
      'name=$(sed -n "s/^HOSTNAME=//p" "$lease" 2>/dev/null | head -n 1)',
      'if [ -n "$name" ]; then exec hostname "$name"; fi',
      '',
    ].join('\n'),
    '/etc/systemd/system/ost-dhcp-hostname.service': [
      '[Unit]',
      'Description=Name the guest from its DHCP lease on eth0',
      'ConditionPathExists=/sys/class/net/eth0',
      'Wants=systemd-networkd-wait-online.service',
      'After=systemd-networkd-wait-online.service',
      '',
      '[Service]',
      'Type=oneshot',
      'ExecStart=/usr/local/sbin/ost-dhcp-hostname',
      '',
      '[Install]',
      'WantedBy=multi-user.target',
      '',
    ].join('\n'),
    // online = the management NIC has its addresses; other NICs (isolated or address-less) never block boot
    '/etc/systemd/system/systemd-networkd-wait-online.service.d/50-ost.conf': [
      '[Service]',
      'ExecStart=',
      'ExecStart=/usr/local/sbin/ost-wait-online',
      '',
    ].join('\n'),
    // networkd gives a NIC up for good (setup state "failed") when one of its netlink or udev waits times
    // out: seen on guests booting six at once on two host cores under TCG, where eth0 then never got an
    // address and the VM was never reachable. Such a NIC is configured again while eth0 is waited for.
    '/usr/local/sbin/ost-wait-online': [
      '#!/bin/sh',
      '# Wait until eth0 (the management NIC) is online, up to 180 s; configure again any NIC networkd gave up.',
      'retry_failed() {',
      `  for link in $(networkctl list --no-legend --no-pager 2>/dev/null | awk '$5 == "failed" && $2 != "lo" { print $2 }'); do`,
      '    echo "ost-wait-online: networkd gave up on $link; configuring it again"',
      '    networkctl reconfigure "$link"',
      '  done',
      '}',
      'end=$(($(date +%s) + 180))',
      'while :; do',
      '  left=$((end - $(date +%s)))',
      '  if [ "$left" -le 0 ]; then exit 1; fi',
      '  if [ "$left" -gt 15 ]; then left=15; fi',
      '  if /lib/systemd/systemd-networkd-wait-online --interface=eth0 --timeout="$left"; then',
      '    retry_failed',
      '    exit 0',
      '  fi',
      '  retry_failed',
      'done',
      '',
    ].join('\n'),
    '/etc/systemd/network/80-ost-dhcp.network': [
      '[Match]',
      'Name=eth* en*',
      '',
      '[Network]',
      'DHCP=yes',
      'IPv6AcceptRA=yes',
      '',
      '[DHCPv4]',
      'UseHostname=no',
      'UseGateway=no',
      'UseDomains=no',
      '',
      '[DHCPv6]',
      'DUIDType=link-layer',
      'UseHostname=no',
      '',
      '[IPv6AcceptRA]',
      'UseGateway=no',
      '',
    ].join('\n'),
  };
}

/**
 * Each VM makes its own SSH host key at its first boot (the image ships none), and only an ed25519 one:
 * `ssh-keygen -A` made RSA-3072, ECDSA and ed25519 keys and held sshd back 10-25 s under TCG (BENCHMARKS.md,
 * issue 13); an ed25519 key takes milliseconds. sshd offers only that key (HostKey), and Debian's
 * openssh-server postinst then creates only that one too when a layer upgrades the package.
 */
export function hostKeyFiles(): Record<string, string> {
  return {
    '/etc/ssh/sshd_config.d/50-ost-host-key.conf': `HostKey ${HOST_KEY}\n`,
    '/usr/local/sbin/ost-host-key': [
      '#!/bin/sh',
      "# This VM's own ed25519 SSH host key, made at its first boot (ssh.service runs this before sshd).",
      `k=${HOST_KEY}`,
      'if [ -s "$k" ] && [ -s "$k.pub" ]; then exit 0; fi',
      'rm -f "$k" "$k.pub"',
      `exec ssh-keygen -q -t ed25519 -N '' -f "$k"`,
      '',
    ].join('\n'),
    // instead of Debian's `sshd -t` (a whole sshd start, ~1.5 s under TCG, for a config no VM changes
    // before its first boot): a bad config still fails the start, with sshd's own message in the journal
    '/etc/systemd/system/ssh.service.d/50-ost-host-keys.conf':
      '[Service]\nExecStartPre=\nExecStartPre=/usr/local/sbin/ost-host-key\n',
  };
}

const HOST_KEY = '/etc/ssh/ssh_host_ed25519_key';

/**
 * The readiness marker: the moment sshd accepts logins (ssh.service is Type=notify: started = listening),
 * a oneshot writes READY_MARKER and the boot id on the serial console, which ost watches (guest/ready.ts)
 * instead of polling. Its one SSH login then starts at once and waits for the rest of the boot
 * (`systemctl is-system-running --wait`), so the login overlaps the boot's last units.
 */
export function readyMarkerFiles(): Record<string, string> {
  return {
    '/usr/local/sbin/ost-ready': [
      '#!/bin/sh',
      '# Tell the host on the serial console that sshd accepts logins (ost up and ost boot-image watch for it).',
      `echo "${READY_MARKER} $(cat /proc/sys/kernel/random/boot_id)" > /dev/ttyS0`,
      '',
    ].join('\n'),
    [`/etc/systemd/system/${READY_UNIT}`]: [
      '[Unit]',
      'Description=Tell the host on the serial console that sshd accepts logins',
      'After=ssh.service',
      'Requisite=ssh.service',
      'ConditionPathExists=/dev/ttyS0',
      '',
      '[Service]',
      'Type=oneshot',
      'ExecStart=/usr/local/sbin/ost-ready',
      '',
      '[Install]',
      'WantedBy=multi-user.target',
      '',
    ].join('\n'),
  };
}

/** The unit that writes the readiness marker (enabled in the tree). */
export const READY_UNIT = 'ost-ready.service';

/**
 * Units a test VM does not need in its boot: e2scrub_reap (10-25 s of blame under TCG; it looks for LVM
 * snapshots of an e2scrub run), the apt, man-db and dpkg backup timers (jobs nobody asked for while a test
 * runs). Masked in the base, so a layer that installs their package keeps them off too.
 */
export const MASKED_UNITS = [
  'e2scrub_reap.service',
  'e2scrub_all.timer',
  'apt-daily.timer',
  'apt-daily-upgrade.timer',
  'man-db.timer',
  'dpkg-db-backup.timer',
];

/**
 * `docs: false`: what dpkg leaves out from then on (this base and every package a layer installs), as
 * path-exclude/path-include lines; copyright files stay, and so do man pages.
 */
export const NO_DOCS_DPKG_CFG = [
  '# ost: no documentation or message translations in test VMs (images/*.yaml docs: false); man pages stay',
  'path-exclude=/usr/share/doc/*',
  'path-include=/usr/share/doc/*/copyright',
  'path-exclude=/usr/share/info/*',
  'path-exclude=/usr/share/locale/*/LC_MESSAGES/*.mo',
  '',
].join('\n');

/** Remove from a debootstrapped tree what NO_DOCS_DPKG_CFG keeps out of later installs. */
export async function pruneDocs(root: string): Promise<void> {
  const doc = path.join(root, 'usr/share/doc');
  for (const e of await fs.readdir(doc, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(doc, e.name);
    if (!e.isDirectory() || e.isSymbolicLink()) {
      await fs.rm(p, { force: true });
      continue;
    }
    for (const f of await fs.readdir(p))
      if (f !== 'copyright') await fs.rm(path.join(p, f), { recursive: true, force: true });
  }
  await removeTree(path.join(root, 'usr/share/info'));
  const locale = path.join(root, 'usr/share/locale');
  for (const l of await fs.readdir(locale).catch(() => [])) {
    const dir = path.join(locale, l, 'LC_MESSAGES');
    for (const f of await fs.readdir(dir).catch(() => []))
      if (f.endsWith('.mo')) await fs.rm(path.join(dir, f), { force: true });
  }
}

/**
 * Root's authorized SSH key comes from the systemd credential `ssh.authorized_keys.root` at every boot
 * (`ost up` passes each env's own public key as an SMBIOS type 11 OEM string,
 * `io.systemd.credential:ssh.authorized_keys.root=<key>`); the image authorizes no key of its own.
 * systemd 252 (Debian 12) imports SMBIOS credentials into PID 1's system credentials
 * (`/run/credentials/@system/<name>`, root's, 0400, in RAM); its own way to install this one (tmpfiles'
 * provision.conf) writes it to the disk once, so it is replaced here. sshd reads it there (`%u`: the
 * credential of the user logging in, so it opens root alone, and sshd
 * reads a user's keys as that user: no other user can read root's). Nothing is written to the disk: a
 * layer built on the image and a checkpoint's disks carry no key; `.ssh/authorized_keys` still counts (the
 * engine adds its own key there on hosts).
 */
export function sshKeyCredentialFiles(): Record<string, string> {
  return {
    // Debian's systemd 252 backports tmpfiles' provision.conf, whose `f^ /root/.ssh/authorized_keys ...
    // ssh.authorized_keys.root` writes the credential to the disk once and never again (`f`: only when the
    // file is missing): a disk that outlives its env (a layer made by booting, a checkpoint) would keep
    // authorizing that env's key. An /etc file of the same name replaces it: no credential is provisioned
    // into files (ost passes none but the key)
    [PROVISION_OVERRIDE]: [
      "# ost: no file is provisioned from systemd credentials. Root's authorized SSH key (the credential",
      '# ssh.authorized_keys.root) is read by sshd where PID 1 put it (sshd_config.d/40-ost-credential-key.conf),',
      '# so it is never written to the disk.',
      '',
    ].join('\n'),
    [SSH_KEY_SSHD_CONF]: [
      "# Root's authorized SSH key: the systemd credential ssh.authorized_keys.root that ost up passes (SMBIOS",
      '# type 11), as PID 1 imported it at boot; no key of the image set is authorized.',
      `AuthorizedKeysFile .ssh/authorized_keys ${SYSTEM_CREDENTIALS_DIR}/ssh.authorized_keys.%u`,
      '',
    ].join('\n'),
  };
}

/** Replaces systemd's tmpfiles provision.conf (see sshKeyCredentialFiles). */
export const PROVISION_OVERRIDE = '/etc/tmpfiles.d/provision.conf';

/** sshd's drop-in that authorizes the key credential. */
export const SSH_KEY_SSHD_CONF = '/etc/ssh/sshd_config.d/40-ost-credential-key.conf';

/**
 * Files written into the tree before it is packed (path inside the guest → content). No authorized key:
 * root's comes from the credential at boot (sshKeyCredentialFiles), so the set's key opens no VM.
 */
export function rootfsFiles(b: DebootstrapBase): Record<string, string> {
  return {
    // no static hostname: the guest takes its name from DHCP on eth0 (ost-<suite>-<vm>, as OST's images)
    '/etc/hostname': '',
    '/etc/hosts': '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n',
    '/etc/fstab': `LABEL=${ROOT_LABEL}\t/\text4\terrors=remount-ro\t0\t1\n`,
    '/etc/apt/sources.list': `deb ${b.mirror} ${b.suite} ${b.components.join(' ')}\n`,
    ...networkdFiles(),
    '/etc/default/grub.d/50-ost.cfg': [
      // no menu and no wait: the console shows GRUB only when a key is held at boot
      'GRUB_TIMEOUT=0',
      'GRUB_TIMEOUT_STYLE=hidden',
      'GRUB_CMDLINE_LINUX_DEFAULT=""',
      // eth0, eth1, … in PCI order (the domain's NIC order), as OST's images (net.ifnames=0)
      'GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8 net.ifnames=0"',
      'GRUB_TERMINAL="console serial"',
      'GRUB_SERIAL_COMMAND="serial --speed=115200"',
      '',
    ].join('\n'),
    ...hostKeyFiles(),
    ...readyMarkerFiles(),
    ...sshKeyCredentialFiles(),
    ...(b.docs ? {} : { '/etc/dpkg/dpkg.cfg.d/50-ost-no-docs': NO_DOCS_DPKG_CFG }),
    '/etc/machine-id': '',
  };
}
