// Debootstrap base: a Debian tree on the host (its files: debootstrap-tree.ts) → partitioned, bootable qcow2
// (ext4, GRUB on BIOS, serial console).
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { guestfsEnv } from '../../core/accel.js';
import { InternalError } from '../../core/errors.js';
import { removeTree } from '../../core/fsutil.js';
import { redactUrl } from '../../core/redact-url.js';
import { debootstrapArgv } from '../../tools/debootstrap.js';
import { gfQuote, scriptArgv } from '../../tools/guestfish.js';
import { createArgv } from '../../tools/qemu-img.js';
import { parseDpkgStatus } from '../pkglist.js';
import type { DebootstrapBase } from '../plan/model.js';
import { MASKED_UNITS, pruneDocs, READY_UNIT, ROOT_LABEL, rootfsFiles } from './debootstrap-tree.js';
import type { Action, LayerContext } from './types.js';

/** Packages every debootstrap base needs to boot under libvirt and answer SSH (besides its kernel). */
export const REQUIRED_PACKAGES = [
  'grub-pc',
  'systemd-sysv',
  'udev',
  'dbus', // debootstrap does not resolve systemd-resolved's "dbus-system-bus" alternative
  'systemd-resolved',
  'openssh-server',
  'ca-certificates',
];

/** The guestfish script that partitions, formats, unpacks the tree and installs GRUB. */
export function diskScript(tarball: string): string {
  return [
    'run',
    'part-disk /dev/sda mbr',
    'part-set-bootable /dev/sda 1 true',
    `mkfs ext4 /dev/sda1 label:${ROOT_LABEL}`,
    'mount /dev/sda1 /',
    `tar-in ${gfQuote(tarball)} / xattrs:true acls:true`,
    'command "grub-install --target=i386-pc /dev/sda"',
    'command "update-grub"',
    '',
  ].join('\n');
}

/** The actions of a debootstrap base: the tree on the host, its units, then the disk made from it. */
export function debootstrapActions(ctx: LayerContext): Action[] {
  const b = ctx.layer.base;
  if (b?.kind !== 'debootstrap') throw new InternalError(`layer ${ctx.layer.name} is not a debootstrap base`);
  const root = path.join(ctx.work, 'root');
  return [...treeActions(ctx, b, root), ...unitActions(root), ...diskActions(ctx, b, root)];
}

/** A fresh scratch directory, debootstrap into it, then our files in the tree. */
function treeActions(ctx: LayerContext, b: DebootstrapBase, root: string): Action[] {
  const include = [...new Set([b.kernel, ...REQUIRED_PACKAGES, ...b.packages])];
  return [
    {
      kind: 'internal',
      title: `prepare ${ctx.work}`,
      run: async () => {
        await removeTree(ctx.work);
        await fs.mkdir(ctx.work, { recursive: true });
      },
    },
    {
      kind: 'exec',
      title: `debootstrap ${b.suite} from ${redactUrl(b.mirror)}`,
      argv: debootstrapArgv({
        suite: b.suite,
        mirror: b.mirror,
        target: root,
        variant: b.variant,
        components: b.components,
        include,
      }),
      timeoutMs: 60 * 60_000,
    },
    {
      kind: 'internal',
      title: `configure the tree: fstab, DHCP on every NIC, serial console, SSH key from a credential, readiness marker${b.docs ? '' : ', no docs'}`,
      run: () => configureTree(b, root),
    },
  ];
}

/** Write our files into the tree with their modes; drop host keys, machine id, docs and package indexes. */
async function configureTree(b: DebootstrapBase, root: string): Promise<void> {
  for (const [file, content] of Object.entries(rootfsFiles(b))) {
    const abs = path.join(root, file);
    await fs.mkdir(path.dirname(abs), { recursive: true });
    await fs.writeFile(abs, content);
  }
  for (const f of ['ost-dhcp-hostname', 'ost-host-key', 'ost-ready', 'ost-wait-online'])
    await fs.chmod(path.join(root, 'usr/local/sbin', f), 0o755);
  // no authorized key in the image: root's comes from the env's credential at each boot
  await fs.rm(path.join(root, 'root/.ssh/authorized_keys'), { force: true });
  for (const f of await fs.readdir(path.join(root, 'etc/ssh'))) {
    if (/^ssh_host_.*_key(\.pub)?$/.test(f)) await fs.rm(path.join(root, 'etc/ssh', f));
  }
  await fs.rm(path.join(root, 'var/lib/dbus/machine-id'), { force: true });
  // man-db rebuilds its index after every package install (slow in the appliance under TCG); man
  // pages still show, only apropos/whatis lack an index
  await fs.rm(path.join(root, 'var/lib/man-db/auto-update'), { force: true });
  if (!b.docs) await pruneDocs(root);
  // debootstrap leaves the mirror's package index behind (~50 MB); layers fetch fresh lists anyway
  for (const f of await fs.readdir(path.join(root, 'var/lib/apt/lists'))) {
    if (f !== 'partial' && f !== 'lock')
      await fs.rm(path.join(root, 'var/lib/apt/lists', f), { force: true });
  }
}

/** systemd units enabled, masked and disabled in the tree (chroot), and apt's downloads dropped. */
function unitActions(root: string): Action[] {
  return [
    {
      kind: 'exec',
      title: 'enable systemd-networkd, systemd-resolved, the DHCP hostname and the readiness marker',
      argv: [
        'chroot',
        root,
        'systemctl',
        'enable',
        'systemd-networkd.service',
        'systemd-resolved.service',
        'ost-dhcp-hostname.service',
        READY_UNIT,
      ],
    },
    {
      kind: 'exec',
      title: `mask what a test VM does not need at boot: ${MASKED_UNITS.join(', ')}`,
      argv: ['chroot', root, 'systemctl', 'mask', ...MASKED_UNITS],
    },
    {
      kind: 'exec',
      title: 'disable ifupdown (networkd owns the NICs)',
      argv: ['chroot', root, 'systemctl', 'disable', 'networking.service'],
      allowFailure: true,
    },
    { kind: 'exec', title: 'drop downloaded packages', argv: ['chroot', root, 'apt-get', 'clean'] },
  ];
}

/** The package list read from the tree, the tree packed, a new disk partitioned and filled by guestfish. */
function diskActions(ctx: LayerContext, b: DebootstrapBase, root: string): Action[] {
  const tarball = path.join(ctx.work, 'root.tar');
  const script = path.join(ctx.work, 'make-disk.guestfish');
  return [
    {
      kind: 'internal',
      title: 'read the package list',
      run: async () => {
        ctx.packages = parseDpkgStatus(await fs.readFile(path.join(root, 'var/lib/dpkg/status'), 'utf8'));
      },
    },
    {
      kind: 'exec',
      title: 'pack the tree',
      argv: [
        'tar',
        '--numeric-owner',
        '--xattrs',
        '--xattrs-include=*',
        '--acls',
        '-C',
        root,
        '-cf',
        tarball,
        '.',
      ],
    },
    {
      kind: 'exec',
      title: `create a ${b.diskSize.text} disk`,
      argv: createArgv(ctx.tmpImage, b.diskSize.text),
    },
    {
      kind: 'internal',
      title: `write ${path.basename(script)}`,
      run: async () => {
        await removeTree(root); // the tarball holds it now; free the space before the disk is filled
        await fs.writeFile(script, diskScript(tarball));
      },
    },
    {
      kind: 'exec',
      title: 'partition, format, unpack and install GRUB (guestfish)',
      argv: scriptArgv(ctx.tmpImage, script),
      env: guestfsEnv(ctx.accel),
      timeoutMs: 30 * 60_000,
    },
  ];
}
