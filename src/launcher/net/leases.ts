// Subnet leases: one file per /24 under <state>/leases, written under a lock held only while leasing
// (never while VMs boot). Subnets the host already uses are skipped.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../../core/errors.js';
import { run } from '../../core/exec.js';
import { acquireLock } from '../../core/lock.js';
import type { ProcessId } from '../../core/process.js';
import { ownDir } from '../../core/safe-dir.js';

export interface Lease {
  prefix: string;
  envId: string;
  network: string;
  owner: ProcessId;
}

/** The /24 prefixes auto-leasing picks from: 192.168.200 … 192.168.254 (as OST does). */
export const AUTO_PREFIXES = Array.from({ length: 55 }, (_, i) => `192.168.${200 + i}`);

/** Parse `ip -j -4 addr`: the `a.b.c` prefixes of every IPv4 address on the host. */
export function parseIpAddrJson(stdout: string): Set<string> {
  const used = new Set<string>();
  const raw: unknown = JSON.parse(stdout || '[]');
  if (!Array.isArray(raw)) return used;
  for (const link of raw) {
    const infos = (link as { addr_info?: { local?: string; family?: string }[] }).addr_info ?? [];
    for (const a of infos) {
      if (a.local && /^\d+\.\d+\.\d+\.\d+$/.test(a.local)) used.add(a.local.split('.').slice(0, 3).join('.'));
    }
  }
  return used;
}

/** The /24 prefixes of the host's own addresses (none known when iproute2 is missing). */
async function hostPrefixes(): Promise<Set<string>> {
  const res = await run('ip', ['-j', '-4', 'addr'], { allowFailure: true }).catch(() => undefined);
  return res?.exitCode === 0 ? parseIpAddrJson(res.stdout) : new Set();
}

/** A lease file as found: its /24 (from the name), and its content unless it cannot be read. */
interface LeaseFile {
  prefix: string;
  file: string;
  lease?: Lease;
}

const LEASE_FILE = /^(\d{1,3}\.\d{1,3}\.\d{1,3})\.json$/;

async function leaseFiles(dir: string): Promise<LeaseFile[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return [];
  }
  const out: LeaseFile[] = [];
  for (const n of names) {
    const m = LEASE_FILE.exec(n);
    if (!m?.[1]) continue;
    const file = path.join(dir, n);
    let lease: Lease | undefined;
    try {
      const raw = JSON.parse(await fs.readFile(file, 'utf8')) as Partial<Lease>;
      if (typeof raw.envId === 'string' && raw.prefix === m[1]) lease = raw as Lease;
    } catch {
      // unreadable: still held (see leaseSubnets)
    }
    out.push({ prefix: m[1], file, lease });
  }
  return out;
}

/** Every readable lease on the host. */
export async function readLeases(dir: string): Promise<Lease[]> {
  return (await leaseFiles(dir)).flatMap((f) => (f.lease ? [f.lease] : []));
}

/**
 * Remove lease files that cannot be read and are older than `minAgeMs` (leases are written whole, so
 * such a file is damage, not a write in progress); `ost gc` calls it. Returns their /24s.
 */
export async function pruneUnreadableLeases(dir: string, minAgeMs = 60_000): Promise<string[]> {
  const out: string[] = [];
  for (const f of await leaseFiles(dir)) {
    if (f.lease) continue;
    const st = await fs.stat(f.file).catch(() => undefined);
    if (!st || Date.now() - st.mtimeMs < minAgeMs) continue;
    await fs.rm(f.file, { force: true });
    out.push(f.prefix);
  }
  return out;
}

/** Write a lease whole: a temp file linked into place (EEXIST when the /24 is someone else's). */
async function writeLease(dir: string, lease: Lease): Promise<void> {
  const tmp = path.join(dir, `.${lease.prefix}.json.${process.pid}.${randomBytes(4).toString('hex')}`);
  await fs.writeFile(tmp, JSON.stringify(lease), { flag: 'wx', mode: 0o644 });
  try {
    await fs.link(tmp, path.join(dir, `${lease.prefix}.json`));
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/**
 * Who holds each /24 in use on this host: an env's lease (`environment <id>`), an address of the host, or
 * `alsoTaken` (other tools' networks). Read without the leases' lock: a lease taken a moment later still
 * makes leaseSubnets refuse that /24.
 */
export async function subnetHolders(
  dir: string,
  alsoTaken: readonly string[] = [],
): Promise<Map<string, string>> {
  const held = new Map<string, string>();
  for (const p of alsoTaken) held.set(p, 'a network of another tool');
  for (const p of await hostPrefixes()) held.set(p, 'an address of this host');
  for (const l of await leaseFiles(dir))
    held.set(l.prefix, l.lease ? `environment ${l.lease.envId}` : 'an unreadable lease');
  return held;
}

/**
 * Lease a /24 for each network: `fixed` ones as asked (an error when taken), the others from
 * AUTO_PREFIXES, skipping the host's own subnets and `alsoTaken` (other tools' networks). Returns
 * network name → prefix.
 */
export async function leaseSubnets(
  dir: string,
  envId: string,
  owner: ProcessId,
  wanted: { network: string; fixed?: string }[],
  alsoTaken: readonly string[] = [],
): Promise<Map<string, string>> {
  // root's alone: nobody else reads or plants a lease (0700, whatever the umask)
  await ownDir(dir, 0o700, 'the leases directory');
  const lock = await acquireLock(path.join(dir, '.lock'), `lease subnets for ${envId}`, 30_000);
  try {
    // an unreadable lease file holds its /24 too, until ost gc removes it
    const taken = new Set((await subnetHolders(dir, alsoTaken)).keys());
    const out = new Map<string, string>();
    for (const w of wanted) {
      let prefix: string | undefined;
      if (w.fixed) {
        if (taken.has(w.fixed)) {
          throw new OstError(
            `subnet ${w.fixed}.0/24 of network ${w.network} is in use on this host`,
            'use ipv4: auto, or stop the environment that holds it (ost list)',
          );
        }
        prefix = w.fixed;
      } else {
        prefix = AUTO_PREFIXES.find((p) => !taken.has(p));
        if (!prefix) {
          throw new OstError(
            'no free /24 left in 192.168.200-254',
            'stop environments you no longer need (ost list, ost down), and clear leftovers with ost gc',
          );
        }
      }
      taken.add(prefix);
      const lease: Lease = { prefix, envId, network: w.network, owner };
      await writeLease(dir, lease);
      out.set(w.network, prefix);
    }
    return out;
  } finally {
    await lock.release();
  }
}

/** Drop every lease of an env. */
export async function releaseLeases(dir: string, envId: string): Promise<string[]> {
  const mine = (await readLeases(dir)).filter((l) => l.envId === envId);
  await Promise.all(mine.map((l) => fs.rm(path.join(dir, `${l.prefix}.json`), { force: true })));
  return mine.map((l) => l.prefix);
}
