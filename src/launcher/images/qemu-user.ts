// The user libvirt runs qemu as (qemu.conf `user`/`group`), and whether it can read a file.
import { readFileSync, statSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { errorMessage, OstError } from '../../core/errors.js';

/** A Unix identity: uid, primary gid and supplementary gids. */
export interface Identity {
  name: string;
  uid: number;
  gid: number;
  groups: number[];
}

function readLines(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n');
  } catch {
    return [];
  }
}

/** The `user = "..."` and `group = "..."` settings of a qemu.conf text. */
export function parseQemuConf(text: string): { user?: string; group?: string } {
  const out: { user?: string; group?: string } = {};
  for (const line of text.split('\n')) {
    const m = /^\s*(user|group)\s*=\s*"([^"]*)"/.exec(line);
    if (m) out[m[1] as 'user' | 'group'] = m[2];
  }
  return out;
}

/** Look a user up in /etc/passwd and /etc/group; `+N` and plain numbers are uids. */
export function lookupIdentity(user: string, group?: string, etc = '/etc'): Identity | undefined {
  const passwd = readLines(path.join(etc, 'passwd')).map((l) => l.split(':'));
  const groupLines = readLines(path.join(etc, 'group')).map((l) => l.split(':'));
  const numeric = /^\+?(\d+)$/.exec(user);
  const pw = numeric
    ? (passwd.find((f) => f[2] === numeric[1]) ?? [user, 'x', numeric[1], numeric[1]])
    : passwd.find((f) => f[0] === user);
  if (!pw || pw[2] === undefined || pw[3] === undefined) return undefined;
  const uid = Number(pw[2]);
  let gid = Number(pw[3]);
  if (group) {
    const gnum = /^\+?(\d+)$/.exec(group);
    const g = gnum ? Number(gnum[1]) : Number(groupLines.find((f) => f[0] === group)?.[2]);
    if (Number.isFinite(g)) gid = g;
  }
  const name = pw[0] ?? user;
  const groups = groupLines
    .filter((f) => (f[3] ?? '').split(',').includes(name))
    .map((f) => Number(f[2]))
    .filter(Number.isFinite);
  return { name, uid, gid, groups: [gid, ...groups] };
}

/**
 * Who qemu runs as under qemu:///system: qemu.conf's user/group, else the distribution default
 * (Debian: libvirt-qemu, Fedora/EL: qemu), else root.
 */
export function qemuIdentity(conf = '/etc/libvirt/qemu.conf', etc = '/etc'): Identity {
  const set = parseQemuConf(readLines(conf).join('\n'));
  const candidates = set.user ? [set.user] : ['libvirt-qemu', 'qemu'];
  for (const u of candidates) {
    const id = lookupIdentity(u, set.group, etc);
    if (id) return id;
  }
  return { name: 'root', uid: 0, gid: 0, groups: [0] };
}

/** Why `who` cannot read `file` (a directory on the way without x, or the file without r), or undefined. */
export function unreadableBy(who: Identity, file: string): string | undefined {
  if (who.uid === 0) return undefined;
  const check = (p: string, bit: 4 | 1): boolean => {
    const st = statSync(p);
    const mode = st.mode;
    if (st.uid === who.uid) return (mode & (bit << 6)) !== 0;
    if (who.groups.includes(st.gid)) return (mode & (bit << 3)) !== 0;
    return (mode & bit) !== 0;
  };
  const abs = path.resolve(file);
  const dirs: string[] = [];
  for (let d = path.dirname(abs); ; d = path.dirname(d)) {
    dirs.unshift(d);
    if (d === path.dirname(d)) break;
  }
  try {
    for (const d of dirs) {
      if (!check(d, 1)) return `directory ${d} is not searchable (x) by ${who.name}`;
    }
    if (!check(abs, 4)) return `${abs} is not readable by ${who.name}`;
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
}

/** A directory qemu must enter: group qemu's (root keeps it; anyone else keeps it and must be in the group). */
export async function shareWithQemuGroup(dir: string, qemu: { gid: number; name: string }): Promise<void> {
  try {
    await fs.chown(dir, process.getuid?.() ?? 0, qemu.gid);
  } catch (err) {
    throw new OstError(
      `cannot share ${dir} with qemu's group (gid ${qemu.gid}): ${errorMessage(err)}`,
      `add yourself to qemu's group (usermod -aG $(id -gn ${qemu.name}) $USER, then log in again), or run ost as root`,
      err,
    );
  }
}

/**
 * Let qemu write a disk: root gives it to the qemu user; anyone else keeps it and shares it with qemu's
 * group (0660), as ost.sh users do (they are in that group).
 */
export async function handToQemu(
  file: string,
  qemu: { uid: number; gid: number; name: string },
): Promise<void> {
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) {
    // qemu's alone: no guest disk is readable by other users
    await fs.chown(file, qemu.uid, qemu.gid);
    await fs.chmod(file, 0o600);
    return;
  }
  try {
    await fs.chown(file, uid, qemu.gid);
    await fs.chmod(file, 0o660);
  } catch (err) {
    throw new OstError(
      `cannot share ${file} with qemu's group (gid ${qemu.gid}): ${errorMessage(err)}`,
      `add yourself to qemu's group (usermod -aG $(id -gn ${qemu.name}) $USER, then log in again), or run ost as root`,
      err,
    );
  }
}
