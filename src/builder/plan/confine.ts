// Host paths an image-set file names stay inside the set file's folder (issue 28): building someone's set
// as root must not copy /etc/shadow into a published image. Checked on real paths (a link inside the folder
// that leads out is outside); `--allow-outside` lifts the rule for a set file its user trusts. Install media
// (location:, kernel:, initrd:) may also be a regular file every local user can read (an ISO under
// /var/lib/ost-images/iso, the installer of a package under /usr/lib/debian-installer): the guest then
// reads nothing its author could not read already.
// Run as root, the files a set reads must also be out of reach of other users from the load to the build
// (no check-then-use race: a user who can write the folder could swap a checked file for a link to
// /etc/shadow after the check): every folder on the way, the file itself and a folder's whole tree are
// root's or the sudo user's and writable by nobody else (a sticky folder such as /tmp excepted).
import {
  lstatSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  type Stats,
  statSync,
} from 'node:fs';
import * as path from 'node:path';
import type { KeyPath } from '../../core/config-file.js';

/** Where a set file's paths must stay, and whether its user lifted the rule. */
export interface Confinement {
  /** The set file's folder, its real path. */
  dir: string;
  allowOutside: boolean;
  /** Run as root: who may own and write what the set reads (root, the sudo user); undefined: anyone. */
  writers?: Writers;
}

/** The users and groups that may own or write what a set file reads (root's ost: root and the sudo user). */
export interface Writers {
  uids: readonly number[];
  gids: readonly number[];
}

/** The confinement for a set file (absolute path) in its folder. */
export function confinementOf(file: string, allowOutside: boolean, writers?: Writers): Confinement {
  return { dir: realPathOf(path.dirname(file)), allowOutside, writers: allowOutside ? undefined : writers };
}

/**
 * Who else can change `st`: undefined when only `w` can. A sticky folder (/tmp) is fine on the way to an
 * input (no one else can rename or remove what is ours in it) but not inside a folder input, where anyone
 * could still add a file after the check. Group write counts only for a group with no other user in it.
 */
function otherWriter(st: Stats, w: Writers, onTheWay: boolean): string | undefined {
  const sticky = onTheWay && st.isDirectory() && (st.mode & 0o1000) !== 0;
  if (!w.uids.includes(st.uid)) return `its owner, uid ${st.uid}`;
  if (sticky) return undefined;
  if (st.mode & 0o002) return 'every user';
  if (st.mode & 0o020 && !groupOfWriters(st.gid, w)) return `group ${st.gid}`;
  return undefined;
}

/** Whether every user in group `gid` (its members, and whoever has it as primary group) is one of `w`. */
function groupOfWriters(gid: number, w: Writers): boolean {
  if (!w.gids.includes(gid)) return false;
  try {
    const users = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .map((l) => l.split(':'))
      .filter((f) => f.length >= 4);
    const uidOf = new Map(users.map((f) => [f[0] as string, Number(f[2])]));
    const group = readFileSync('/etc/group', 'utf8')
      .split('\n')
      .map((l) => l.split(':'))
      .find((f) => Number(f[2]) === gid && f.length >= 4);
    const members = (group?.[3] ?? '').split(',').filter(Boolean);
    const uids = [
      ...users.filter((f) => Number(f[3]) === gid).map((f) => Number(f[2])),
      ...members.map((m) => uidOf.get(m) ?? -1),
    ];
    return uids.every((u) => w.uids.includes(u));
  } catch {
    return false;
  }
}

const MAX_TREE_ENTRIES = 100_000;

/**
 * The first thing on the way to `real` (each folder from /, then it and, for a folder, its whole tree) that
 * someone other than `w` can change, with who: undefined when there is none.
 */
export function foreignWriter(real: string, w: Writers): string | undefined {
  const parts = real.split(path.sep).filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const p = path.join(path.sep, ...parts.slice(0, i));
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch {
      return undefined; // missing: nothing to swap yet, and the build's preflight says so
    }
    const who = otherWriter(st, w, true);
    if (who) return `${p} can be changed by ${who}`;
  }
  let seen = 0;
  const walk = (dir: string): string | undefined => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (++seen > MAX_TREE_ENTRIES) return `${real} has more than ${MAX_TREE_ENTRIES} entries`;
      const p = path.join(dir, e.name);
      const st = lstatSync(p);
      const who = st.isSymbolicLink() ? undefined : otherWriter(st, w, false);
      if (who) return `${p} can be changed by ${who}`;
      if (e.isDirectory()) {
        const deeper = walk(p);
        if (deeper) return deeper;
      }
    }
    return undefined;
  };
  try {
    return lstatSync(real).isDirectory() ? walk(real) : undefined;
  } catch {
    return undefined;
  }
}

const WRITERS_HINT =
  "root's ost reads only files no other user can change (else one could be swapped for a link after the check): build it through that user's own sudo, make it root's (chown/chmod go-w), or pass --allow-outside if you trust them";

/** The problem with what a set reads at `real` when others could change it before the build reads it. */
function writerProblem(c: Confinement, what: string, given: string, real: string): string | undefined {
  if (!c.writers) return undefined;
  const why = foreignWriter(real, c.writers);
  return why ? `${what} ${given}: ${why}; ${WRITERS_HINT}` : undefined;
}

const MAX_LINKS = 40;

/**
 * The real path of `abs`, links followed, also when it does not exist (yet): its longest existing prefix
 * resolved, the rest appended; a dangling link is followed to where it points.
 */
export function realPathOf(abs: string, links = 0): string {
  const rest: string[] = [];
  let head = abs;
  for (;;) {
    try {
      return path.join(realpathSync(head), ...rest.reverse());
    } catch {
      // missing, or a link to a missing target: followed below
    }
    const target = danglingTarget(head);
    if (target !== undefined && links < MAX_LINKS)
      return realPathOf(path.join(target, ...[...rest].reverse()), links + 1);
    const parent = path.dirname(head);
    if (parent === head) return abs;
    rest.push(path.basename(head));
    head = parent;
  }
}

/** Where a link that leads nowhere points (absolute), or undefined when `p` is not a link. */
function danglingTarget(p: string): string | undefined {
  try {
    if (!lstatSync(p).isSymbolicLink()) return undefined;
    return path.resolve(path.dirname(p), readlinkSync(p));
  } catch {
    return undefined;
  }
}

/** Whether `real` is `dir` or under it. */
export function isInside(dir: string, real: string): boolean {
  const rel = path.relative(dir, real);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

const HINT =
  "a set file reads only files in its own folder: move it there, or pass --allow-outside if you trust this set file's author";
const MEDIA_HINT =
  'outside it, install media must be a regular file that every user can read (o+r, each parent folder o+x)';

/** What is outside, where it leads, and what to do. */
function outsideMessage(
  c: Confinement,
  what: string,
  given: string,
  abs: string,
  real: string,
  hints: string[],
) {
  const where = real === abs ? `resolved to ${abs}` : `resolved to ${abs}, which leads to ${real}`;
  return `${what} ${given} is outside the image-set file's folder ${c.dir} (${where}); ${hints.join('; ')}`;
}

/**
 * The problem with a host path a set file names (`given` as written, `abs` resolved against its folder), or
 * undefined when it stays inside the folder (or the rule is lifted).
 */
export function outsideProblem(c: Confinement, what: string, given: string, abs: string): string | undefined {
  if (c.allowOutside) return undefined;
  const real = realPathOf(abs);
  return isInside(c.dir, real)
    ? writerProblem(c, what, given, real)
    : outsideMessage(c, what, given, abs, real, [HINT]);
}

/**
 * As outsideProblem, for install media: outside the folder they may also be a regular file that every
 * local user can read (o+r, every parent folder o+x). A missing one is left to the build's preflight.
 */
export function outsideMediaProblem(
  c: Confinement,
  what: string,
  given: string,
  abs: string,
): string | undefined {
  if (c.allowOutside) return undefined;
  const real = realPathOf(abs);
  if (isInside(c.dir, real)) return writerProblem(c, what, given, real);
  let isFile: boolean;
  try {
    isFile = statSync(real).isFile();
  } catch {
    return undefined; // missing: the preflight of a build says so, and checks again once it exists
  }
  if (isFile && publiclyReadable(real)) return writerProblem(c, what, given, real);
  return outsideMessage(c, what, given, abs, real, [MEDIA_HINT, HINT]);
}

/** Whether every local user can read `real` (o+r) and reach it (each parent folder o+x). */
function publiclyReadable(real: string): boolean {
  try {
    if ((statSync(real).mode & 0o004) === 0) return false;
    for (let d = path.dirname(real); ; d = path.dirname(d)) {
      if ((statSync(d).mode & 0o001) === 0) return false;
      if (path.dirname(d) === d) return true;
    }
  } catch {
    return false;
  }
}

/** A set file's host paths: resolved against its folder, with a problem recorded when one leads outside. */
export interface HostPaths {
  /** The rule they are checked by. */
  confinement: Confinement;
  /** Resolved against the set file's folder, unchecked. */
  resolve(given: string): string;
  /** Whether the rule lets the set read `abs` (inside its folder, or --allow-outside). */
  allowed(abs: string): boolean;
  /** Resolved; `ok` false (and a problem at `p`) when it leads outside the folder. */
  inside(p: KeyPath, given: string, what: string): { abs: string; ok: boolean };
  /** As inside, for install media (see outsideMediaProblem). */
  media(p: KeyPath, given: string, what: string): string;
}

/** The host paths of the set file `file` (absolute), problems going to `add`. */
export function hostPaths(
  file: string,
  allowOutside: boolean,
  add: (p: KeyPath, m: string) => void,
  writers?: Writers,
): HostPaths {
  const dir = path.dirname(file);
  const c = confinementOf(file, allowOutside, writers);
  // the set file itself: what it says is what root builds
  const own = writerProblem(c, 'the image-set file', path.basename(file), realPathOf(file));
  if (own !== undefined) add([], own);
  const resolve = (given: string) => path.resolve(dir, given);
  return {
    confinement: c,
    resolve,
    allowed: (abs) => c.allowOutside || isInside(c.dir, realPathOf(abs)),
    inside: (p, given, what) => {
      const abs = resolve(given);
      const problem = outsideProblem(c, what, given, abs);
      if (problem !== undefined) add(p, problem);
      return { abs, ok: problem === undefined };
    },
    media: (p, given, what) => {
      const abs = resolve(given);
      const problem = outsideMediaProblem(c, what, given, abs);
      if (problem !== undefined) add(p, problem);
      return abs;
    },
  };
}
