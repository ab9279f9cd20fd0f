// rpm adapter: installed packages (in an installroot, from a given database) and package files.

/** One installed package. */
export interface InstalledPackage {
  name: string;
  version: string;
  release: string;
  arch: string;
}

const QF = '%{NAME}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n';

/**
 * Which rpm database to read: an installroot (`--root`) and the database's directory (`--dbpath`). rpm
 * 4.18 takes `--dbpath` inside `--root` (`--root R --dbpath /root/.rpmdb` reads `R/root/.rpmdb`) and
 * prints the files of `-ql` as the root sees them. Without `dbpath`, rpm uses `%_dbpath`, which Debian's
 * rpm 4.18 sets per user (`~/.rpmdb`): a query by one user does not see another user's installs.
 */
export interface RpmDb {
  root?: string;
  dbpath?: string;
}

function dbArgs(db: RpmDb = {}): string[] {
  return [...(db.root ? ['--root', db.root] : []), ...(db.dbpath ? ['--dbpath', db.dbpath] : [])];
}

/** Where rpm keeps the system's database: Fedora ≥ 36 and EL ≥ 9, older ones. */
export const SYSTEM_RPMDB_DIRS = ['/usr/lib/sysimage/rpm', '/var/lib/rpm'] as const;

/** Where an install as root may have put the database: the system's, or root's own on Debian. */
export const RPMDB_DIRS = [...SYSTEM_RPMDB_DIRS, '/root/.rpmdb'] as const;

/** A directory is an rpm database when it holds one of these: sqlite (rpm ≥ 4.16), ndb, Berkeley DB. */
export const RPMDB_FILES = ['rpmdb.sqlite', 'Packages.db', 'Packages'] as const;

/** argv: the database directory this user's rpm reads by default (`%_dbpath`). */
export function rpmDbpathArgv(): string[] {
  return ['rpm', '--eval', '%_dbpath'];
}

/**
 * argv: query packages by name; missing ones print "package X is not installed" and exit non-zero. rpm
 * 4.18 prints that line for every name even when it cannot open the database (and says so on stderr).
 */
export function rpmQueryArgv(names: readonly string[], db?: RpmDb): string[] {
  return ['rpm', ...dbArgs(db), '-q', '--qf', QF, ...names];
}

/** argv: list the files of an installed package. */
export function rpmFilesArgv(name: string, db?: RpmDb): string[] {
  return ['rpm', ...dbArgs(db), '-ql', name];
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
