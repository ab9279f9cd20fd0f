// Remove an environment: domains, networks, overlays, leases, env dir — each step idempotent, so it can be
// repeated and works from whatever is left (libvirt metadata alone is enough).
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../core/errors.js';
import type { Reporter } from '../core/events.js';
import { faultPoint } from '../core/fault.js';
import { type Lock, LockBusyError } from '../core/lock.js';
import { isNotFound, virsh } from '../tools/virsh.js';
import { removeDeployment } from './env-dir/deployment.js';
import { type FoundEnv, isLeftover } from './env-dir/discover.js';
import { leasesDir } from './env-dir/record.js';
import { removeWorkdir } from './env-dir/workdir.js';
import { lockEnv, lockEnvWaiting } from './env-lock.js';
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
  // the env dir and an OST suite's deployment dir (as its owner), each only when its marker names this env
  removed.push(...(await removeDeployment(e.deployment, e.id)));
  removed.push(...(await removeWorkdir(root, e.id)));
  const leases = await releaseLeases(leasesDir(root), e.id);
  return { domains, networks, removed, leases };
}

/** What taking an env down under its lock needs: how to find it again, and how to tear it down. */
export interface LockedTeardown {
  stateRoot: string;
  /** The env with this id as it is now (libvirt, state dir), or undefined when it is gone. */
  find: (id: string) => Promise<FoundEnv | undefined>;
  tear: (e: FoundEnv) => Promise<TeardownResult>;
  reporter: Reporter;
}

/**
 * `ost down`: under the env's lock, which it waits for up to `waitMs` while a checkpoint or revert of the
 * env runs (then an EnvBusyError naming it), the env found again (what was found before the wait may be
 * stale) and torn down. Undefined when it is gone by then.
 */
export async function downLocked(
  d: LockedTeardown,
  id: string,
  waitMs: number,
): Promise<{ env: FoundEnv; result: TeardownResult } | undefined> {
  const lock = await lockEnvWaiting(d.stateRoot, id, `ost down ${id}`, waitMs, d.reporter);
  try {
    const env = await d.find(id);
    return env ? { env, result: await d.tear(env) } : undefined;
  } finally {
    await lock.release();
  }
}

/**
 * `ost gc` of one env it found a leftover: torn down only when, under the env's lock, it is found again
 * and is a leftover still — a new `ost up --from` may have taken the id meanwhile. An env whose lock
 * another command holds is being worked on, so not a leftover: skipped, with a warning.
 */
export async function reapLeftover(d: LockedTeardown, id: string): Promise<TeardownResult | undefined> {
  let lock: Lock;
  try {
    lock = await lockEnv(d.stateRoot, id, `ost gc ${id}`, 0);
  } catch (err) {
    if (!(err instanceof LockBusyError)) throw err;
    d.reporter({
      type: 'warning',
      message: `not removing ${id}: another command works on it (${err.message})`,
    });
    return undefined;
  }
  try {
    const env = await d.find(id);
    return env && isLeftover(env) ? await d.tear(env) : undefined;
  } finally {
    await lock.release();
  }
}
