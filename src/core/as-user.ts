// Files root must leave in a tree another user owns (an OST checkout's deployment dir and
// exported-artifacts) are written by a child process running as that user: its uid, its gid and its
// groups, real and effective. The kernel then refuses whatever the user could not do themselves, so a dir
// swapped for a link to /etc, or a file planted as a link to /etc/shadow, gets nothing from root. Root
// reads what it must hand over (it can read the installed images' files; the user may not) and passes
// the contents on the child's stdin; nothing the user can write is read back by root here.
import * as fsSync from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { OstError, ToolError } from './errors.js';
import { run } from './exec.js';

/** Whose rights the child has. */
export interface UserIdentity {
  uid: number;
  gid: number;
}

/** One change in the user's tree; paths are absolute. */
export type UserTreeOp =
  /**
   * A directory (parents as needed) made with exactly this mode; one already there is left as it is, or,
   * `exclusive`, is an error (the claim on a name: nobody else made it first).
   */
  | { op: 'mkdir'; path: string; mode: number; exclusive?: boolean }
  /** A regular file with this text, replaced whole (written beside it, then renamed over it). */
  | { op: 'write'; path: string; text: string; mode: number }
  /** A symbolic link, replacing whatever is at `path`. */
  | { op: 'symlink'; path: string; target: string }
  /** Whatever is at `path`, a tree too; nothing there is fine. */
  | { op: 'remove'; path: string };

/**
 * Apply `ops` in order with the given `fs` and `dirname`; the first failure's text (op, path, reason), or
 * undefined. Self-contained (no closure, no import): its source is also the child's program (CHILD).
 */
function applyOps(
  fs: typeof import('node:fs'),
  dirname: (p: string) => string,
  pid: number,
  ops: readonly UserTreeOp[],
): string | undefined {
  for (const o of ops) {
    try {
      if (o.op === 'mkdir' && o.exclusive) {
        fs.mkdirSync(dirname(o.path), { recursive: true, mode: 0o755 });
        fs.mkdirSync(o.path, { mode: o.mode });
        fs.chmodSync(o.path, o.mode);
      } else if (o.op === 'mkdir') {
        if (fs.mkdirSync(o.path, { recursive: true, mode: o.mode }) !== undefined)
          fs.chmodSync(o.path, o.mode);
      } else if (o.op === 'write') {
        const tmp = `${o.path}.ost-new-${pid}`;
        fs.writeFileSync(tmp, o.text, { mode: o.mode, flag: 'wx' });
        fs.chmodSync(tmp, o.mode);
        fs.renameSync(tmp, o.path);
      } else if (o.op === 'symlink') {
        fs.rmSync(o.path, { force: true });
        fs.symlinkSync(o.target, o.path);
      } else if (o.op === 'remove') fs.rmSync(o.path, { recursive: true, force: true });
      else return `unknown op ${JSON.stringify(o)}`;
    } catch (e) {
      return `${o.op} ${o.path}: ${(e as Error).message}`;
    }
  }
  return undefined;
}

// The child's program (node -e): the JSON list of ops on stdin, applyOps's own source applied to it; the
// failure on stderr, exit 1.
const CHILD = `
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const failed = (${applyOps.toString()})(require('fs'), require('path').dirname, process.pid, JSON.parse(input));
  if (failed) { process.stderr.write(failed + '\\n'); process.exit(1); }
});
`;

function refused(who: UserIdentity, why: string): OstError {
  return new OstError(
    `could not write as uid ${who.uid} (the owner of that tree): ${why}`,
    'the tree belongs to that user: make sure they can write there, or remove what is in the way',
  );
}

/** Whether NSS knows the uid (then the child gets the user's groups; else none beyond its gid). */
async function hasPasswdEntry(uid: number): Promise<boolean> {
  const r = await run('getent', ['passwd', String(uid)], { allowFailure: true });
  return r.exitCode === 0;
}

/** The argv that runs the child as `who`, another user (ourselves: asUser applies the ops in-process). */
async function userChildArgv(who: UserIdentity): Promise<[string, string[]]> {
  const node = [process.execPath, '-e', CHILD];
  const groups = (await hasPasswdEntry(who.uid)) ? '--init-groups' : '--clear-groups';
  return ['setpriv', [`--reuid=${who.uid}`, `--regid=${who.gid}`, groups, '--reset-env', '--', ...node]];
}

/** Apply `ops` as `who`; one error naming the user and what failed. */
export async function asUser(who: UserIdentity, ops: readonly UserTreeOp[]): Promise<void> {
  if (ops.length === 0) return;
  // ourselves: the same ops in this process (no child to start), with the same rights the child would have
  if (process.geteuid?.() === who.uid && process.getegid?.() === who.gid) {
    const failed = applyOps(fsSync, path.dirname, process.pid, ops);
    if (failed) throw refused(who, failed);
    return;
  }
  const [file, args] = await userChildArgv(who);
  try {
    await run(file, args, { input: JSON.stringify(ops), cwd: '/', tailLines: 5 });
  } catch (err) {
    if (!(err instanceof ToolError)) throw err;
    throw refused(who, err.tail.join('; ') || err.message);
  }
}

/** `ops` that copy root-readable files into the user's tree: root reads, the user writes. */
export async function copiesFor(
  files: ReadonlyArray<{ from: string; to: string; mode: number }>,
): Promise<UserTreeOp[]> {
  const ops: UserTreeOp[] = [];
  for (const f of files) {
    try {
      ops.push({ op: 'write', path: f.to, text: await readFile(f.from, 'utf8'), mode: f.mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return ops;
}
