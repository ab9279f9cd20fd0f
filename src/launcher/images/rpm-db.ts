// Which rpm database holds the installed ost-images packages, and the query of it. Debian's rpm (4.18)
// keeps a database per user (`%_dbpath` is `~/.rpmdb`): root's `dnf install` lands in /root/.rpmdb, a
// `dnf --installroot=R` in R/root/.rpmdb (R/<home>/.rpmdb under a sudo that keeps HOME), and another
// user's plain `rpm -q` reads their own database and says "not installed". So the database is looked
// for where an install puts it and queried with `--dbpath`.
import { accessSync, constants } from 'node:fs';
import { userInfo } from 'node:os';
import * as path from 'node:path';
import { formatCommand } from '../../core/exec.js';
import {
  type InstalledPackage,
  parseRpmQuery,
  RPMDB_DIRS,
  RPMDB_FILES,
  type RpmDb,
  rpmDbpathArgv,
  rpmQueryArgv,
  SYSTEM_RPMDB_DIRS,
} from '../../tools/rpm.js';
import { runArgv } from '../../tools/run-tool.js';

/** Where the databases were looked for, and what was there. */
export interface DbSearch {
  root?: string;
  /** Databases this user can read, in order of preference (`dbpath` is inside `root`). */
  readable: RpmDb[];
  /** Databases (host paths) this user may not look into, with the reason. */
  unreadable: string[];
  /** Every directory looked in (host paths). */
  looked: string[];
  /** This user's rpm keeps its own database (Debian's `~/.rpmdb`), not the system's. */
  perUser: boolean;
}

/** What the query of the chosen database said. */
export interface DbAnswer {
  /** The database read; none when no database could be read. */
  db?: RpmDb;
  installed: InstalledPackage[];
  missing: string[];
  /** rpm could not read the database: the command and its complaint (then nothing else is trusted). */
  failure?: string;
  search: DbSearch;
}

/** A database's directory as this host sees it. */
export function dbHostPath(root: string | undefined, dbpath: string): string {
  return root ? path.join(root, dbpath) : dbpath;
}

/** Whether `dir` holds a database this user can read (true), holds none (false), or why it cannot tell. */
function probe(dir: string): boolean | string {
  for (const f of RPMDB_FILES) {
    try {
      accessSync(path.join(dir, f), constants.R_OK);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') return code ?? String(err);
    }
  }
  return false;
}

/** Who runs ost, for messages. */
function me(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.()}`;
  }
}

/**
 * The rpm databases of the host (`root` undefined) or of an installroot: this user's default
 * (`rpm --eval %_dbpath`, so a `sudo dnf` that kept HOME is found too), then the system's and root's.
 */
export async function findRpmDbs(root: string | undefined, signal?: AbortSignal): Promise<DbSearch> {
  const own = (await runArgv(rpmDbpathArgv(), { signal })).stdout.trim();
  const search: DbSearch = {
    root,
    readable: [],
    unreadable: [],
    looked: [],
    perUser: !(SYSTEM_RPMDB_DIRS as readonly string[]).includes(own),
  };
  for (const dbpath of new Set([own, ...RPMDB_DIRS])) {
    if (!dbpath.startsWith('/')) continue;
    const dir = dbHostPath(root, dbpath);
    search.looked.push(dir);
    const p = probe(dir);
    if (p === true) search.readable.push(root ? { root, dbpath } : { dbpath });
    else if (p !== false) search.unreadable.push(`${dir} (${p} as ${me()})`);
  }
  return search;
}

/**
 * Query these packages in every readable database and take the one that has most of them (the first
 * found on a tie): an install's database, not an empty one a user's rpm made in their home.
 */
export async function queryInstalled(
  names: readonly string[],
  root: string | undefined,
  signal?: AbortSignal,
): Promise<DbAnswer> {
  const search = await findRpmDbs(root, signal);
  const answers = await Promise.all(
    search.readable.map(async (db) => {
      const argv = rpmQueryArgv(names, db);
      const res = await runArgv(argv, { allowFailure: true, signal });
      return { db, argv, res, q: parseRpmQuery(res.stdout) };
    }),
  );
  let best = answers[0];
  for (const a of answers) if (best && a.q.installed.length > best.q.installed.length) best = a;
  if (!best) return { installed: [], missing: [...names], search };
  const { q, res } = best;
  const answered = (n: string) => q.missing.includes(n) || q.installed.some((p) => p.name === n);
  // rpm 4.18 says "not installed" of every name when it cannot open the database; stderr says why
  if (/^error:/m.test(res.stderr) || !names.every(answered))
    return {
      db: best.db,
      installed: [],
      missing: [],
      failure: `${formatCommand(best.argv)} failed: ${res.stderr.trim()}`,
      search,
    };
  return { db: best.db, installed: q.installed, missing: q.missing, search };
}

/**
 * The problem line for packages that are not installed, with the command that installs them where this
 * query then finds them: into the installroot (its own database, found above whoever runs ost); on a
 * host whose rpm keeps a database per user, a non-root ost cannot read root's (/root is 0700), so into an
 * installroot it can read.
 */
export function notInstalled(
  missing: readonly string[],
  a: DbAnswer,
  asRoot = process.geteuid?.() === 0,
): string {
  const pkgs = [...new Set(missing)].join(' ');
  const root = a.search.root;
  const sudo = asRoot ? '' : 'sudo ';
  const where = a.db
    ? `  rpm database: ${dbHostPath(root, a.db.dbpath ?? '')}`
    : `  no rpm database ${me()} can read in ${a.search.looked.join(', ')}${a.search.unreadable.length > 0 ? `; cannot read ${a.search.unreadable.join(', ')}` : ''}`;
  let fix = `${sudo}dnf${root ? ` --installroot=${root}` : ''} install ${pkgs}`;
  if (!root && sudo && a.search.perUser)
    fix = `${sudo}dnf --installroot=/var/lib/ost-images install ${pkgs}, then ost up --images-root /var/lib/ost-images (this host's rpm keeps root's database in root's home, which ${me()} cannot read)`;
  return `not installed: ${missing.join(', ')}\n${where}\n  fix: ${fix}`;
}
