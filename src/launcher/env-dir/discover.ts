// Find every ost environment on the host from libvirt metadata, env dirs and leases — whichever remains.

import * as fs from 'node:fs/promises';
import { processAlive } from '../../core/process.js';
import { parseNames, virsh } from '../../tools/virsh.js';
import { type OstMetadata, readMetadata } from '../libvirt/render.js';
import { parseXml } from '../libvirt/xml.js';
import { DOMAIN_NAME, NETWORK_NAME } from '../net/layout.js';
import { readLeases } from '../net/leases.js';
import { type EnvRecord, envDirOf, envsDir, leasesDir } from './record.js';
import { readTrustedRecord } from './trusted-record.js';
import { markerOwner } from './workdir.js';

export interface FoundEnv {
  id: string;
  suite: string;
  workdir?: string;
  /** An OST suite's deployment dir (its owner's). */
  deployment?: string;
  overlayDir?: string;
  owner?: { pid: number; start: string };
  /** Age of its env dir, when it has one (an env whose owner is not known yet is young, not a leftover). */
  ageMs?: number;
  /** libvirt domain name → its metadata. */
  domains: Map<string, OstMetadata>;
  networks: Map<string, OstMetadata>;
  leases: string[];
  record?: EnvRecord;
}

/** Whether `ost up` finished for this env (a domain says so, or env.json does). */
export function isUp(e: FoundEnv): boolean {
  return [...e.domains.values()].some((m) => m.state === 'up') || e.record?.status === 'up';
}

/** How long an env without a known owner is taken for one still being created (its marker not written yet). */
export const UNOWNED_GRACE_MS = 60_000;

/**
 * Taken down by something else than ost: it came up, and none of its domains or networks is left in
 * libvirt (OST's `./ost.sh destroy`, a libvirtd restart). What ost made beside libvirt is still there.
 */
export function isGone(e: FoundEnv): boolean {
  return e.record?.status === 'up' && e.domains.size === 0 && e.networks.size === 0;
}

/**
 * A leftover: its `ost up` never finished and the process that ran it is gone, or it is gone from
 * libvirt (isGone). An env whose owner is not known (an env dir whose marker is being written) is a
 * leftover only once it is older than a minute.
 */
export function isLeftover(e: FoundEnv): boolean {
  if (isGone(e)) return true;
  if (isUp(e)) return false;
  if (!e.owner) return e.ageMs === undefined || e.ageMs > UNOWNED_GRACE_MS;
  return !processAlive(e.owner);
}

export { DOMAIN_NAME, NETWORK_NAME };

async function ostObjects(
  uri: string,
  kind: 'domain' | 'network',
  onlyId?: string,
): Promise<Map<string, OstMetadata>> {
  const list = kind === 'domain' ? ['list', '--all', '--name'] : ['net-list', '--all', '--name'];
  const names = parseNames((await virsh(uri, list)).stdout).filter((n) => {
    const m = (kind === 'domain' ? DOMAIN_NAME : NETWORK_NAME).exec(n);
    // every env id is 8 hex digits, and every name of the env carries it
    return m !== null && (onlyId === undefined || m[1] === onlyId);
  });
  const out = new Map<string, OstMetadata>();
  await Promise.all(
    names.map(async (name) => {
      const res = await virsh(uri, [kind === 'domain' ? 'dumpxml' : 'net-dumpxml', name], {
        allowFailure: true,
      });
      if (res.exitCode !== 0) return; // gone meanwhile
      const parsed = parseXml(res.stdout);
      if ('error' in parsed) return;
      const root = parsed.doc[kind];
      const meta = root && typeof root === 'object' && !Array.isArray(root) ? readMetadata(root) : undefined;
      if (meta) out.set(name, meta);
    }),
  );
  return out;
}

/** Every env on the host, by id; with `onlyId`, that env alone (its objects' XML is all that is read). */
export async function discoverEnvs(
  uri: string,
  root: string,
  onlyId?: string,
): Promise<Map<string, FoundEnv>> {
  const envs = new Map<string, FoundEnv>();
  const get = (id: string, suite = ''): FoundEnv => {
    let e = envs.get(id);
    if (!e) {
      e = { id, suite, domains: new Map(), networks: new Map(), leases: [] };
      envs.set(id, e);
    }
    if (!e.suite && suite) e.suite = suite;
    return e;
  };
  const [domains, networks] = await Promise.all([
    ostObjects(uri, 'domain', onlyId),
    ostObjects(uri, 'network', onlyId),
  ]);
  for (const [kind, objects] of [
    ['domains', domains],
    ['networks', networks],
  ] as const) {
    for (const [name, m] of objects) {
      const e = get(m.envId, m.suite);
      e[kind].set(name, m);
      e.workdir ??= m.workdir;
      e.deployment ??= m.deployment;
      e.overlayDir ??= m.overlayDir;
      e.owner ??= { pid: m.ownerPid, start: m.ownerStart };
    }
  }
  let dirs: string[] = [];
  try {
    dirs = await fs.readdir(envsDir(root));
  } catch {
    // no env dir yet
  }
  for (const id of dirs) {
    if (onlyId !== undefined && id !== onlyId) continue;
    const workdir = envDirOf(root, id);
    const record = await readTrustedRecord(workdir);
    const e = get(id, record?.suite);
    e.workdir ??= workdir;
    e.deployment ??= record?.deployment?.dir;
    e.record = record;
    e.overlayDir ??= record?.overlayDir;
    e.owner ??= record?.owner ?? (await markerOwner(workdir));
    const st = await fs.stat(workdir).catch(() => undefined);
    if (st) e.ageMs = Date.now() - st.mtimeMs;
  }
  for (const l of await readLeases(leasesDir(root))) {
    if (onlyId !== undefined && l.envId !== onlyId) continue;
    const e = get(l.envId);
    e.leases.push(l.prefix);
    e.owner ??= l.owner;
  }
  return envs;
}
