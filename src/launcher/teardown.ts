// Remove an environment: domains, networks, overlays, leases, env dir — each step idempotent, so it can be
// repeated and works from whatever is left (libvirt metadata alone is enough).
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../core/errors.js';
import type { Reporter } from '../core/events.js';
import { faultPoint } from '../core/fault.js';
import { isNotFound, virsh } from '../tools/virsh.js';
import type { FoundEnv } from './env-dir/discover.js';
import { leasesDir } from './env-dir/record.js';
import { removeWorkdir } from './env-dir/workdir.js';
import { stopSshdProxy } from './ipv6-proxy.js';
import { netnsDir, removeEnvNetns } from './net/isolated.js';
import { releaseLeases } from './net/leases.js';

export interface TeardownResult {
  domains: string[];
  networks: string[];
  removed: string[];
  leases: string[];
}

/** Destroy a transient domain or network; "not found" counts as done. */
export async function destroyObject(uri: string, kind: 'domain' | 'network', name: string): Promise<void> {
  const res = await virsh(uri, [kind === 'domain' ? 'destroy' : 'net-destroy', name], { allowFailure: true });
  if (res.exitCode !== 0 && !isNotFound(res)) {
    throw new OstError(
      `virsh ${kind === 'domain' ? 'destroy' : 'net-destroy'} ${name}: ${res.stderr.trim()}`,
      'see what libvirt says above, then run ost down again: it finishes what is left',
    );
  }
  // a persistent definition (someone ran virsh define) would bring it back: drop it too
  await virsh(uri, [kind === 'domain' ? 'undefine' : 'net-undefine', name], { allowFailure: true });
}

/** Tear an env down; `root` is the state root (for leases). */
export async function teardown(
  uri: string,
  root: string,
  e: FoundEnv,
  reporter: Reporter = () => {},
): Promise<TeardownResult> {
  const domains = [...e.domains.keys()];
  const networks = [...e.networks.keys()];
  await Promise.all(domains.map((d) => destroyObject(uri, 'domain', d)));
  await faultPoint('down:domains');
  await Promise.all(networks.map((n) => destroyObject(uri, 'network', n)));
  const removed: string[] = [];
  // ost.sh run -6's helper sshd (its pid file is in the env dir, as lagofy.sh's ost_destroy reads it)
  await stopSshdProxy(e.workdir);
  // an isolated env's namespace (its dnsmasq, gateways, veths): found by the env id alone
  if (await removeEnvNetns(e.id, netnsDir(root, e.id))) removed.push(`network namespace ost-${e.id}`);
  // overlays live in <overlay root>/<env id>: only ever remove a directory named after the env
  const overlays = e.overlayDir;
  if (overlays && path.basename(overlays) === e.id) {
    await fs.rm(overlays, { recursive: true, force: true });
    removed.push(overlays);
  } else if (overlays) {
    reporter({ type: 'warning', message: `not removing ${overlays}: not named after env ${e.id}` });
  }
  // the env dir (a deployment dir too) only when its marker names this env
  removed.push(...(await removeWorkdir(root, e.id, e.workdir)));
  const leases = await releaseLeases(leasesDir(root), e.id);
  return { domains, networks, removed, leases };
}
