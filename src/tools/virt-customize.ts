// virt-customize adapter: turns a derived layer's repositories and steps into argv (one appliance run per layer).
// Quirk (virt-customize 1.48): --format must come before -a, or it is refused.
import { shellQuote } from '../core/exec.js';

/** Package-manager family of a guest. */
export type Family = 'deb' | 'rpm';

/** One customisation, in order: install packages, upgrade all, run a script file, run a command, upload a file. */
export type Step =
  | { kind: 'install'; packages: string[] }
  | { kind: 'upgrade' }
  | { kind: 'script'; file: string }
  | { kind: 'run'; command: string }
  | { kind: 'upload'; from: string; to: string; mode?: string };

/** A package repository written into the guest before the steps (file:// ones are copied in). */
export interface GuestRepo {
  name: string;
  /** http(s):// URL, or file:///dir on the build host. */
  url: string;
  suite?: string;
  components?: string[];
  trusted: boolean;
}

export interface CustomizeSpec {
  disk: string;
  memoryMiB: number;
  network: boolean;
  family: Family;
  selinux: boolean;
  /** Repositories this layer adds, before its steps. */
  repos?: GuestRepo[];
  steps: Step[];
}

/** Where a file:// repository's copy lives in the guest (it stays: children install from it too). */
export const GUEST_REPO_DIR = '/var/lib/ost-repos';

/** Upgrade every package, non-interactively, keeping changed config files. */
export function upgradeCommand(family: Family): string {
  return family === 'deb'
    ? 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Options::=--force-confdef ' +
        '-o Dpkg::Options::=--force-confold full-upgrade'
    : 'dnf -y upgrade --refresh';
}

/** virt-customize arguments that add one repository to the guest. */
export function repoArgv(family: Family, r: GuestRepo): string[] {
  const argv: string[] = [];
  let url = r.url;
  if (url.startsWith('file://')) {
    const hostDir = decodeURIComponent(new URL(url).pathname).replace(/\/+$/, '');
    const dest = `${GUEST_REPO_DIR}/${r.name}`;
    const staging = `${GUEST_REPO_DIR}/.in-${r.name}`;
    const base = hostDir.split('/').pop() || r.name;
    argv.push('--mkdir', staging, '--copy-in', `${hostDir}:${staging}`);
    argv.push(
      '--run-command',
      `rm -rf ${dest} && mv ${staging}/${shellQuote(base)} ${dest} && rmdir ${staging}`,
    );
    url = family === 'deb' ? `file:${dest}` : `file://${dest}`;
  }
  if (family === 'deb') {
    const opts = r.trusted ? '[trusted=yes] ' : '';
    const line = `deb ${opts}${url} ${r.suite ?? './'}${r.components?.length ? ` ${r.components.join(' ')}` : ''}`;
    argv.push('--write', `/etc/apt/sources.list.d/ost-${r.name}.list:${line}\n`);
  } else {
    const repo = [
      `[ost-${r.name}]`,
      `name=ost-${r.name}`,
      `baseurl=${url}`,
      'enabled=1',
      `gpgcheck=${r.trusted ? 0 : 1}`,
      '',
    ].join('\n');
    argv.push('--write', `/etc/yum.repos.d/ost-${r.name}.repo:${repo}`);
  }
  return argv;
}

/** Where each family's package manager keeps downloaded packages (mounted on tmpfs during a build). */
export const PACKAGE_CACHE: Record<Family, string[]> = {
  deb: ['/var/cache/apt', '/var/lib/apt/lists'],
  rpm: ['/var/cache/dnf'],
};

/**
 * Guest commands around the user's steps: the package cache goes on tmpfs (downloaded packages never land
 * in the layer) and, on Debian, policy-rc.d stops package scripts from starting daemons in the appliance.
 */
export function buildTimeGuestSetup(family: Family): { before: string; after: string } {
  const dirs = PACKAGE_CACHE[family];
  const mounts = dirs.map((d) => `mkdir -p ${d} && mount -t tmpfs -o mode=0755 ost-pkgcache ${d}`);
  if (family === 'deb') {
    return {
      before:
        `${mounts.join(' && ')} && mkdir -p /var/cache/apt/archives/partial /var/lib/apt/lists/partial` +
        " && printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d",
      after: `rm -f /usr/sbin/policy-rc.d && umount ${[...dirs].reverse().join(' ')}`,
    };
  }
  return { before: mounts.join(' && '), after: `umount ${[...dirs].reverse().join(' ')}` };
}

/** argv for virt-customize. Steps run in order inside one appliance boot. */
export function customizeArgv(spec: CustomizeSpec): string[] {
  const argv = ['virt-customize', '--format', 'qcow2', '-a', spec.disk, '-m', String(spec.memoryMiB)];
  argv.push(spec.network ? '--network' : '--no-network');
  const cache = buildTimeGuestSetup(spec.family);
  argv.push('--run-command', cache.before);
  for (const r of spec.repos ?? []) argv.push(...repoArgv(spec.family, r));
  for (const s of spec.steps) {
    switch (s.kind) {
      case 'install':
        argv.push('--install', s.packages.join(','));
        break;
      case 'upgrade':
        argv.push('--run-command', upgradeCommand(spec.family));
        break;
      case 'script':
        argv.push('--run', s.file);
        break;
      case 'run':
        argv.push('--run-command', s.command);
        break;
      case 'upload':
        argv.push('--upload', `${s.from}:${s.to}`);
        if (s.mode) argv.push('--chmod', `${s.mode}:${s.to}`);
        break;
      default: {
        const never: never = s;
        throw new Error(`unknown step ${JSON.stringify(never)}`);
      }
    }
  }
  argv.push('--run-command', cache.after);
  // virt-customize fills an empty machine-id; keep it empty so every VM gets its own at first boot
  argv.push('--truncate', '/etc/machine-id');
  if (spec.selinux) argv.push('--selinux-relabel');
  return argv;
}
