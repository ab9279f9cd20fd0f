// dnf adapter: installs into a scratch root from given repositories only, never the host's.

export interface DnfRootSpec {
  installRoot: string;
  /** name → baseurl (file:// or http(s)://) */
  repos: Record<string, string>;
  gpgcheck: boolean;
  /** Check the signature of repomd.xml too (default: same as gpgcheck). */
  repoGpgcheck?: boolean;
  /** Public keys for gpgcheck (file paths). */
  gpgKeys?: string[];
  cacheDir?: string;
}

function common(s: DnfRootSpec): string[] {
  const argv = [
    'dnf',
    '-y',
    '-q',
    `--installroot=${s.installRoot}`,
    '--releasever=1',
    '--setopt=reposdir=/nonexistent',
    '--setopt=install_weak_deps=False',
    '--setopt=keepcache=False',
    '--disableplugin=*',
  ];
  if (s.cacheDir) argv.push(`--setopt=cachedir=${s.cacheDir}`);
  for (const [name, url] of Object.entries(s.repos)) {
    argv.push(`--repofrompath=${name},${url}`);
    argv.push(`--setopt=${name}.gpgcheck=${s.gpgcheck ? 1 : 0}`);
    argv.push(`--setopt=${name}.repo_gpgcheck=${(s.repoGpgcheck ?? s.gpgcheck) ? 1 : 0}`);
    if (s.gpgKeys?.length)
      argv.push(`--setopt=${name}.gpgkey=${s.gpgKeys.map((k) => `file://${k}`).join(' ')}`);
  }
  if (!s.gpgcheck) argv.push('--nogpgcheck');
  return argv;
}

export function dnfInstallArgv(s: DnfRootSpec, packages: string[]): string[] {
  return [...common(s), 'install', ...packages];
}

export function dnfUpgradeArgv(s: DnfRootSpec, packages: string[] = []): string[] {
  return [...common(s), 'upgrade', ...packages];
}

/** argv: what is installed in the root, as `name version-release`. */
export function rpmQueryAllArgv(root: string): string[] {
  return ['rpm', '--root', root, '-qa', '--qf', '%{NAME} %{VERSION}-%{RELEASE}\\n'];
}
