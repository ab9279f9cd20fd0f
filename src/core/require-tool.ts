// A missing system tool gives one error naming the package for apt and for dnf.
import { accessSync, constants } from 'node:fs';
import * as path from 'node:path';
import { OstError } from './errors.js';

/** Which package provides each external tool, on Debian/Ubuntu (apt) and Fedora/EL (dnf). */
export const TOOL_PACKAGES = {
  'qemu-img': { apt: 'qemu-utils', dnf: 'qemu-img' },
  'qemu-system-x86_64': { apt: 'qemu-system-x86', dnf: 'qemu-system-x86-core' },
  'virt-customize': { apt: 'libguestfs-tools', dnf: 'guestfs-tools' },
  guestfish: { apt: 'libguestfs-tools', dnf: 'guestfish' },
  'virt-install': { apt: 'virtinst', dnf: 'virt-install' },
  virsh: { apt: 'libvirt-clients', dnf: 'libvirt-client' },
  debootstrap: { apt: 'debootstrap', dnf: 'debootstrap' },
  'ssh-keygen': { apt: 'openssh-client', dnf: 'openssh-clients' },
  ssh: { apt: 'openssh-client', dnf: 'openssh-clients' },
  rpmbuild: { apt: 'rpm', dnf: 'rpm-build' },
  createrepo_c: { apt: 'createrepo-c', dnf: 'createrepo_c' },
  dnf: { apt: 'dnf', dnf: 'dnf' },
  rpm: { apt: 'rpm', dnf: 'rpm' },
  rpmsign: { apt: 'rpm', dnf: 'rpm-sign' },
  rpm2cpio: { apt: 'rpm2cpio', dnf: 'rpm' },
  cpio: { apt: 'cpio', dnf: 'cpio' },
  gpg: { apt: 'gnupg', dnf: 'gnupg2' },
  tar: { apt: 'tar', dnf: 'tar' },
  chroot: { apt: 'coreutils', dnf: 'coreutils' },
  flock: { apt: 'util-linux', dnf: 'util-linux' },
  'dpkg-deb': { apt: 'dpkg', dnf: 'dpkg' },
} as const;

export type ToolName = keyof typeof TOOL_PACKAGES;

const EXTRA_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/libexec'];

/** PATH plus the sbin directories a non-root PATH often lacks. */
export function searchDirs(): string[] {
  return [...(process.env.PATH ?? '').split(':').filter(Boolean), ...EXTRA_DIRS];
}

/** Absolute path of a tool on PATH (plus sbin dirs), or undefined. */
export function findTool(name: string, dirs: readonly string[] = searchDirs()): string | undefined {
  for (const d of dirs) {
    const p = path.join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** The error for a missing tool, naming both package managers' packages. */
export function missingToolError(name: ToolName): OstError {
  const pkg = TOOL_PACKAGES[name];
  return new OstError(
    `${name} is not installed`,
    `install it with \`apt-get install ${pkg.apt}\` (Debian/Ubuntu) or \`dnf install ${pkg.dnf}\` (Fedora/EL)`,
  );
}

/** Return the tool's path or throw the install hint. */
export function requireTool(name: ToolName): string {
  const found = findTool(name);
  if (!found) throw missingToolError(name);
  return found;
}

/** Check several tools at once, reporting every missing one in a single error. */
export function requireTools(names: readonly ToolName[], dirs: readonly string[] = searchDirs()): void {
  const missing = [...new Set(names)].filter((n) => !findTool(n, dirs));
  if (missing.length === 0) return;
  const apt = [...new Set(missing.map((n) => TOOL_PACKAGES[n].apt))].join(' ');
  const dnf = [...new Set(missing.map((n) => TOOL_PACKAGES[n].dnf))].join(' ');
  throw new OstError(
    `missing system tools: ${missing.join(', ')}`,
    `install them with \`apt-get install ${apt}\` (Debian/Ubuntu) or \`dnf install ${dnf}\` (Fedora/EL)`,
  );
}
