// rpm adapter: query installed packages (optionally in an installroot): name, version, release and files.

/** One installed package. */
export interface InstalledPackage {
  name: string;
  version: string;
  release: string;
  arch: string;
}

const QF = '%{NAME}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n';

function rootArgs(root?: string): string[] {
  return root ? ['--root', root] : [];
}

/** argv: query packages by name; missing ones print "package X is not installed" and exit non-zero. */
export function rpmQueryArgv(names: readonly string[], root?: string): string[] {
  return ['rpm', ...rootArgs(root), '-q', '--qf', QF, ...names];
}

/** argv: list the files of an installed package. */
export function rpmFilesArgv(name: string, root?: string): string[] {
  return ['rpm', ...rootArgs(root), '-ql', name];
}

/** argv: the scriptlets and triggers of a package file; no output means it has none. */
export function rpmPackageScriptsArgv(file: string): string[] {
  return ['rpm', '-qp', '--scripts', '--triggers', file];
}

/** One package file's identity. */
export interface PackageFileId {
  name: string;
  /** `[epoch:]version-release` (no epoch when it has none). */
  version: string;
  arch: string;
}

/** argv: name, `[epoch:]version-release` and arch of package files (not installed ones), tab-separated. */
export function rpmQueryFilesArgv(files: readonly string[]): string[] {
  return [
    'rpm',
    '-qp',
    '--nosignature',
    '--nodigest',
    '--qf',
    '%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\n',
    ...files,
  ];
}

/** Parse rpmQueryFilesArgv's output, one package per line in the order of the files. */
export function parseRpmFileQuery(stdout: string): PackageFileId[] {
  return stdout
    .split('\n')
    .map((l) => l.split('\t'))
    .filter((f) => f.length === 3 && f[0])
    .map(([name, version, arch]) => ({
      name: name as string,
      version: version as string,
      arch: arch as string,
    }));
}

/** Parse `rpm -q --qf` output (installed packages) and its "not installed" lines. */
export function parseRpmQuery(stdout: string): { installed: InstalledPackage[]; missing: string[] } {
  const installed: InstalledPackage[] = [];
  const missing: string[] = [];
  for (const line of stdout.split('\n')) {
    const miss = /^package (\S+) is not installed$/.exec(line.trim());
    if (miss) {
      missing.push(miss[1] as string);
      continue;
    }
    const f = line.split('\t');
    if (f.length === 4 && f[0]) {
      installed.push({
        name: f[0],
        version: f[1] as string,
        release: f[2] as string,
        arch: f[3] as string,
      });
    }
  }
  return { installed, missing };
}
