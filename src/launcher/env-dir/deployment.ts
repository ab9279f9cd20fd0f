// An OST suite's deployment dir ($OST_DEPLOYMENT, else <checkout>/deployment): the folder OST's harness
// reads, in a tree its user owns. ost keeps nothing of its own there (its env dir is <state>/envs/<id>).
// What the harness needs — the marker, `hosts`, `env.sh`, the key's copy, a link to the console logs,
// `sshd_pid`, OST's `deployed` marker after a revert — is written, and at the end removed, by a child with
// the owner's uid, gid and groups (core/as-user.ts): root never acts by path in that tree, and reads
// nothing back from it but the marker that says whose the dir is.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { asUser, type UserIdentity, type UserTreeOp } from '../../core/as-user.js';
import { OstError } from '../../core/errors.js';
import type { ProcessId } from '../../core/process.js';
import { imageVars, renderEnvSh, renderHosts } from './ost-files.js';
import type { EnvRecord } from './record.js';
import { MARKER, ownsWorkdir } from './workdir.js';

/** The nearest dir of `dir` and its parents that exists, with symlinks resolved. */
async function nearestExisting(dir: string): Promise<string> {
  for (let p = dir; ; p = path.dirname(p)) {
    try {
      return await fs.realpath(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || p === '/') throw err;
    }
  }
}

/**
 * Who a deployment dir belongs to: the user of sudo (SUDO_UID/GID), as `./ost.sh` run by them would make
 * it; else, for root, the owner of the nearest dir above it that exists (a user's OST checkout is
 * theirs); anyone else makes their own. A root-owned one must sit where no other user can swap a parent.
 */
export async function deploymentOwner(dir: string, sudo?: UserIdentity): Promise<UserIdentity> {
  if (sudo) return sudo;
  const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  if (me.uid !== 0) return me;
  const parent = await nearestExisting(path.dirname(dir));
  const st = await fs.stat(parent);
  if (st.uid !== 0) return { uid: st.uid, gid: st.gid };
  for (let p = parent; ; p = path.dirname(p)) {
    const s = await fs.stat(p);
    // a sticky dir (/tmp, /var/tmp): nobody else can rename or remove what root made or owns in it
    if ((s.mode & 0o022) !== 0 && (s.mode & 0o1000) === 0)
      throw new OstError(
        `deployment dir ${dir}: ${p} is writable by other users, who could swap a folder on the way to it`,
        'choose a deployment dir (OST_DEPLOYMENT) under a folder only its owner can write',
      );
    if (p === '/') return { uid: 0, gid: 0 };
  }
}

function ownerOf(r: EnvRecord): { dir: string; who: UserIdentity } | undefined {
  if (!r.deployment) return undefined;
  return { dir: r.deployment.dir, who: { uid: r.deployment.uid, gid: r.deployment.gid } };
}

/**
 * Claim the deployment dir (refused when it exists, as ost_init; the exclusive mkdir is the claim), with
 * its marker, the keys' copies (0600, the owner's: the harness logs in with them; their `.pub`) and `logs` pointing
 * at the env dir's console logs.
 */
export async function createDeployment(
  r: EnvRecord,
  owner: ProcessId,
  keys: ReadonlyArray<{ from: string; to: string }>,
): Promise<void> {
  const d = ownerOf(r);
  if (!d) return;
  if (await fs.lstat(d.dir).catch(() => undefined))
    throw new OstError(
      `deployment dir ${d.dir} already exists (an environment is there, or was)`,
      `ost down ${d.dir} (or ./ost.sh destroy), or set OST_DEPLOYMENT to another path`,
    );
  const ops: UserTreeOp[] = [
    { op: 'mkdir', path: d.dir, mode: 0o755, exclusive: true },
    {
      op: 'write',
      path: path.join(d.dir, MARKER),
      text: `${r.id} ${owner.pid} ${owner.start}\n`,
      mode: 0o644,
    },
    { op: 'symlink', path: path.join(d.dir, 'logs'), target: path.join(r.workdir, 'logs') },
    { op: 'mkdir', path: path.join(d.dir, 'keys'), mode: 0o700 },
  ];
  ops.push(...(await keyOps(keys)));
  await asUser(d.who, ops);
}

/** Writing each key's copy (0600) and its public half (`.pub`, 0644: `ost.sh run -6` authorizes it). */
async function keyOps(keys: ReadonlyArray<{ from: string; to: string }>): Promise<UserTreeOp[]> {
  const ops: UserTreeOp[] = [];
  for (const k of keys) {
    ops.push({ op: 'write', path: k.to, text: await fs.readFile(k.from, 'utf8'), mode: 0o600 });
    const pub = await fs.readFile(`${k.from}.pub`, 'utf8').catch(() => undefined);
    if (pub !== undefined) ops.push({ op: 'write', path: `${k.to}.pub`, text: pub, mode: 0o644 });
  }
  return ops;
}

/** The harness's copies of the env's keys again, as the owner (after `ost revert` put a checkpoint's in). */
export async function republishKeys(r: EnvRecord): Promise<void> {
  const d = ownerOf(r);
  if (!d) return;
  const keys = [...new Set(r.vms.map((vm) => vm.key))];
  await asUser(d.who, await keyOps(keys.map((key) => ({ from: key, to: harnessKeyOf(d.dir, key) }))));
}

/** The key OST's harness uses for a VM: the owner's copy in the deployment dir. */
export function harnessKeyOf(deployment: string, key: string): string {
  return path.join(deployment, 'keys', path.basename(key));
}

/** `hosts` and `env.sh`, what OST's harness reads, written as the deployment's owner. */
export async function publishDeployment(record: EnvRecord): Promise<void> {
  const d = ownerOf(record);
  if (!d) return;
  // as the harness sees the env: OST_DEPLOYMENT is the deployment dir, the keys are the owner's copies
  const r: EnvRecord = {
    ...record,
    workdir: d.dir,
    vms: record.vms.map((vm) => ({ ...vm, key: harnessKeyOf(d.dir, vm.key) })),
  };
  await asUser(d.who, [
    { op: 'write', path: path.join(d.dir, 'hosts'), text: renderHosts(r), mode: 0o644 },
    {
      op: 'write',
      path: path.join(d.dir, 'env.sh'),
      text: renderEnvSh(r, { ostRepo: r.ostRepo, uri: r.uri, ...imageVars(r) }),
      mode: 0o644,
    },
  ]);
}

/** OST's `deployed` marker as a checkpoint had it (pytest writes it once the suite deployed). */
export async function setDeployedMarker(r: EnvRecord, deployed: boolean): Promise<void> {
  const d = ownerOf(r);
  if (!d || r.kind !== 'ost-json') return;
  const marker = path.join(d.dir, 'deployed');
  if (!deployed) await asUser(d.who, [{ op: 'remove', path: marker }]);
  else if (!(await fs.lstat(marker).catch(() => undefined)))
    await asUser(d.who, [{ op: 'write', path: marker, text: '', mode: 0o644 }]);
}

/** The `--ipv6-only` helper sshd's pid, where `./ost.sh destroy` looks for it. */
export async function publishSshdPid(r: EnvRecord, pid: number): Promise<void> {
  const d = ownerOf(r);
  if (d)
    await asUser(d.who, [{ op: 'write', path: path.join(d.dir, 'sshd_pid'), text: `${pid}\n`, mode: 0o644 }]);
}

/**
 * Remove an env's deployment dir as the dir's owner (whoever that is now: they can remove it anyway),
 * when it is a real dir whose marker names env `id`; the paths removed.
 */
export async function removeDeployment(dir: string | undefined, id: string): Promise<string[]> {
  if (!dir) return [];
  const st = await fs.lstat(dir).catch(() => undefined);
  if (!st?.isDirectory() || !(await ownsWorkdir(dir, id))) return [];
  await asUser({ uid: st.uid, gid: st.gid }, [{ op: 'remove', path: dir }]);
  return [dir];
}
