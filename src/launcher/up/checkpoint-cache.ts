// `ost up <suite> --checkpoint-cache`: start from a checkpoint of the same content (the images' builds, the
// suite's definition, its deploy scripts, whether they ran) when one is stored, else boot (and deploy) as
// usual and checkpoint the result for next time. The second run of a suite on the same images restores
// instead of booting: seconds, not minutes. With --deployed the first run boots the deployed layers (no
// deploy) and the key covers them: a memory checkpoint on top of a deployed package.
import { errorMessage, OstError } from '../../core/errors.js';
import { checkpointSubnets } from '../checkpoint/from.js';
import { checkpointsInUse } from '../checkpoint/in-use.js';
import { contentKey, type KeyImage } from '../checkpoint/key.js';
import { listCheckpoints, removeCheckpoint, type StoredCheckpoint } from '../checkpoint/store.js';
import { takeCheckpoint } from '../checkpoint/take.js';
import { type EnvRecord, leasesDir } from '../env-dir/record.js';
import { qemuIdentity } from '../images/qemu-user.js';
import { imageKey, type ResolvedImage, resolveImages } from '../images/resolve.js';
import { deployedStart } from './deployed-start.js';
import type { UpOptions } from './options.js';
import { checkUpRequest, willDeploy } from './request.js';
import { up } from './run.js';

/** What `--checkpoint-cache` did. */
export interface CacheOutcome {
  /** The cached checkpoint's name (restored from, or taken now); none when taking one failed. */
  name?: string;
  /** Restored from the cache (true), or booted (false). */
  hit: boolean;
  /** The content key looked up. */
  key: string;
  /** Why a checkpoint that matched was not used, or why none was taken. */
  note?: string;
  /** ms the checkpoint for next time took. */
  checkpointMs?: number;
  /** Older cache checkpoints of the suite that this one replaced (removed; no env ran on them). */
  replaced: string[];
}

/**
 * What a cache checkpoint holds: the env as booted, as its deploy scripts left it, or as booted from a
 * deployed package (--deployed). Each kind has its own names, so one never replaces another's.
 */
export type CacheKind = 'booted' | 'deployed' | 'frompkg';

/** `cache-<suite>-<kind>-<key>`: a checkpoint name (64 characters at most). */
export function cacheName(suite: string, kind: CacheKind, key: string): string {
  const prefix = `cache-${suite.replace(/[^A-Za-z0-9._-]/g, '-')}`.slice(0, 64 - (kind.length + 14));
  return `${prefix}-${kind}-${key.slice(0, 12)}`;
}

/** The prefix every cache checkpoint of `suite` of that kind has. */
const cachePrefix = (suite: string, kind: CacheKind) => cacheName(suite, kind, '');

/**
 * The content key an up with these options would store its cache checkpoint under, and the images it was
 * computed from: the up boots or restores exactly those (a `dnf upgrade` between the two cannot file an
 * env of new images under the old images' key).
 */
export async function cacheKey(
  o: UpOptions,
): Promise<{ key: string; images: Map<string, ResolvedImage>; deployedKey?: string }> {
  const qemu = qemuIdentity();
  const images = await resolveImages(o.env.vms, { ...o.images, qemu, signal: o.signal });
  const byVm = new Map<string, KeyImage>();
  for (const vm of o.env.vms) {
    const img = images.get(imageKey(vm));
    if (img) byVm.set(vm.name, { ref: img.ref, path: img.path, package: img.package });
  }
  // --deployed: the deployed layers the env would boot from (none that match with =auto: a run-time deploy)
  const start = o.deployed && (await deployedStart(o.env, images, qemu, o.deployed, o.reporter));
  // the name in the key says what the checkpoint holds: an env as booted, as its deploy scripts left it, or
  // as booted from deployed layers of that key
  const what = start ? `from-deployed:${start.key}` : willDeploy(o.env, o.deploy) ? 'deployed' : 'booted';
  const key = contentKey(o.env, byVm, o.ipMode ?? 'dual', `checkpoint-cache:${what}`);
  return { key, images, deployedKey: start ? start.key : undefined };
}

export async function upWithCheckpointCache(
  o: UpOptions & { checkpointRoot: string },
): Promise<{ record: EnvRecord; cache: CacheOutcome }> {
  checkUpRequest({
    env: o.env,
    id: o.id,
    ipMode: o.ipMode,
    deploy: o.deploy,
    wait: o.wait,
    from: o.from && { name: o.from.name, envId: o.from.record.env.id },
    isolated: o.isolated,
    checkpointCache: true,
    customRepos: o.custom?.repos,
    customInstall: o.custom?.install,
  });
  const resolveStart = Date.now();
  const { key, images, deployedKey } = await cacheKey(o);
  o = { ...o, resolved: { images, ms: Date.now() - resolveStart } };
  // --deployed=auto without a matching package: the up deploys at run time (and need not look again)
  if (o.deployed && !deployedKey) o = { ...o, deployed: undefined };
  const kind: CacheKind = deployedKey ? 'frompkg' : willDeploy(o.env, o.deploy) ? 'deployed' : 'booted';
  const found = (await listCheckpoints(o.checkpointRoot)).find((c) => c.record.key === key);
  let note: string | undefined;
  if (found) {
    const free = await subnetsFree(found, o.stateRoot);
    if (free === true) {
      // restored as the checkpoint holds it (of deployed layers too: its disks sit on them)
      const record = await up({ ...o, from: found, deployed: undefined });
      return { record, cache: { name: found.name, hit: true, key, replaced: [] } };
    }
    note = `checkpoint ${found.name} matches, but ${free}: booting instead`;
    o.reporter({ type: 'warning', subject: 'checkpoint cache', message: note });
    // the cache has its checkpoint; this env is booted and left as it is
    return { record: await up(o), cache: { name: found.name, hit: false, key, note, replaced: [] } };
  }
  const record = await up(o);
  const name = cacheName(o.env.suite, kind, key);
  const t0 = Date.now();
  let taken: StoredCheckpoint;
  try {
    taken = await takeCheckpoint({
      uri: o.uri,
      stateRoot: o.stateRoot,
      root: o.checkpointRoot,
      env: record.id,
      name,
      key,
      reporter: o.reporter,
    });
  } catch (err) {
    // the env is up and fine: only the next run will boot again
    note = `no checkpoint was taken for next time: ${errorMessage(err)}`;
    o.reporter({ type: 'warning', subject: 'checkpoint cache', message: note });
    return { record, cache: { hit: false, key, note, replaced: [] } };
  }
  const replaced = await dropSuperseded(o, taken, cachePrefix(o.env.suite, kind));
  return { record, cache: { name, hit: false, key, checkpointMs: Date.now() - t0, replaced } };
}

/** true, or why the checkpoint's subnets cannot be had now (another env holds them). */
async function subnetsFree(ck: StoredCheckpoint, stateRoot: string): Promise<true | string> {
  try {
    await checkpointSubnets(ck, leasesDir(stateRoot));
    return true;
  } catch (err) {
    if (err instanceof OstError) return err.message.replace(/^checkpoint [^:]*: /, '');
    throw err;
  }
}

/** The suite's older cache checkpoints (other keys: older images or suite files) that no env runs on. */
async function dropSuperseded(
  o: UpOptions & { checkpointRoot: string },
  kept: StoredCheckpoint,
  prefix: string,
) {
  const used = await checkpointsInUse(o.uri, o.stateRoot);
  const dropped: string[] = [];
  for (const c of await listCheckpoints(o.checkpointRoot)) {
    if (c.name === kept.name || !c.name.startsWith(prefix) || used.has(c.dir)) continue;
    try {
      await removeCheckpoint(o.checkpointRoot, c.name);
      dropped.push(c.name);
    } catch (err) {
      o.reporter({ type: 'warning', subject: c.name, message: `not removed: ${errorMessage(err)}` });
    }
  }
  return dropped;
}
