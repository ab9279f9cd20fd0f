// Files root must leave in a tree another user owns (an OST checkout's deployment dir and
// exported-artifacts) are written by a child process running as that user: its uid, its gid and its
// groups, real and effective. The kernel then refuses whatever the user could not do themselves, so a dir
// swapped for a link to /etc, or a file planted as a link to /etc/shadow, gets nothing from root. Root
// reads what it must hand over (it can read the installed images' files; the user may not) and passes
// the contents on the child's stdin; nothing the user can write is read back by root here.
import { readFile } from 'node:fs/promises';
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

// The child's program: plain JavaScript (node -e), so the same text runs from dist/ and under the test
// runner. It reads the JSON list of ops on stdin, applies them in order and stops at the first failure,
// naming the op and the path on stderr.
const CHILD = `
const fs = require('fs');
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  for (const o of JSON.parse(input)) {
    try {
      if (o.op === 'mkdir' && o.exclusive) {
        fs.mkdirSync(require('path').dirname(o.path), { recursive: true, mode: 0o755 });
        fs.mkdirSync(o.path, { mode: o.mode });
        fs.chmodSync(o.path, o.mode);
      }
      else if (o.op === 'mkdir') { if (fs.mkdirSync(o.path, { recursive: true, mode: o.mode }) !== undefined) fs.chmodSync(o.path, o.mode); }
      else if (o.op === 'write') {
        const tmp = o.path + '.ost-new-' + process.pid;
        fs.writeFileSync(tmp, o.text, { mode: o.mode, flag: 'wx' });
        fs.chmodSync(tmp, o.mode);
        fs.renameSync(tmp, o.path);
      }
      else if (o.op === 'symlink') { fs.rmSync(o.path, { force: true }); fs.symlinkSync(o.target, o.path); }
      else if (o.op === 'remove') fs.rmSync(o.path, { recursive: true, force: true });
      else throw new Error('unknown op');
    } catch (e) {
      process.stderr.write(o.op + ' ' + o.path + ': ' + e.message + '\\n');
      process.exit(1);
    }
  }
});
`;

/** Whether NSS knows the uid (then the child gets the user's groups; else none beyond its gid). */
async function hasPasswdEntry(uid: number): Promise<boolean> {
  const r = await run('getent', ['passwd', String(uid)], { allowFailure: true });
  return r.exitCode === 0;
}

/** The argv that runs the child as `who` (as ourselves when that is who we are). */
export async function userChildArgv(who: UserIdentity): Promise<[string, string[]]> {
  const node = [process.execPath, '-e', CHILD];
  if (process.geteuid?.() === who.uid) return [node[0] as string, node.slice(1)];
  const groups = (await hasPasswdEntry(who.uid)) ? '--init-groups' : '--clear-groups';
  return ['setpriv', [`--reuid=${who.uid}`, `--regid=${who.gid}`, groups, '--reset-env', '--', ...node]];
}

/** Apply `ops` as `who`; one error naming the user and what failed. */
export async function asUser(who: UserIdentity, ops: readonly UserTreeOp[]): Promise<void> {
  if (ops.length === 0) return;
  const [file, args] = await userChildArgv(who);
  try {
    await run(file, args, { input: JSON.stringify(ops), cwd: '/', tailLines: 5 });
  } catch (err) {
    if (!(err instanceof ToolError)) throw err;
    throw new OstError(
      `could not write as uid ${who.uid} (the owner of that tree): ${err.tail.join('; ') || err.message}`,
      'the tree belongs to that user: make sure they can write there, or remove what is in the way',
    );
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
