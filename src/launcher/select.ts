// Which environment a command means: an id, a suite with one env, or the only env on the host.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { OstError } from '../core/errors.js';
import { discoverEnvs, type FoundEnv } from './env-dir/discover.js';
import { ENV_ID } from './net/layout.js';

/**
 * Find one env; `wanted` may be an env id, its env or deployment dir (a path: it has a `/` or exists),
 * or a suite name with exactly one env.
 */
export async function selectEnv(uri: string, root: string, wanted?: string): Promise<FoundEnv | undefined> {
  // an env id: that env's objects alone are read (ten downs at once each read one env, not ten)
  if (wanted && ENV_ID.test(wanted)) {
    const one = (await discoverEnvs(uri, root, wanted)).get(wanted);
    if (one) return one;
  }
  const all = [...(await discoverEnvs(uri, root)).values()];
  if (wanted) {
    const exact = all.find((e) => e.id === wanted);
    if (exact) return exact;
    if (wanted.includes('/') || existsSync(wanted)) {
      const dir = path.resolve(wanted);
      return all.find((e) => [e.workdir, e.deployment].some((d) => d && path.resolve(d) === dir));
    }
    const bySuite = all.filter((e) => e.suite === wanted);
    if (bySuite.length === 1) return bySuite[0];
    if (bySuite.length > 1) {
      throw new OstError(
        `suite ${wanted} has ${bySuite.length} environments: ${bySuite.map((e) => e.id).join(', ')}`,
        'name one by its id',
      );
    }
    return undefined;
  }
  if (all.length === 1) return all[0];
  if (all.length === 0) return undefined;
  throw new OstError(
    `${all.length} environments on this host: ${all.map((e) => e.id).join(', ')}`,
    'name one by its id (ost list shows them)',
  );
}

/** Like selectEnv, but an env that does not exist is an error. */
export async function requireEnv(uri: string, root: string, wanted?: string): Promise<FoundEnv> {
  const e = await selectEnv(uri, root, wanted);
  if (!e) {
    throw new OstError(
      wanted ? `no environment ${wanted} on this host` : 'no environment on this host',
      'ost list shows the environments; ost up <suite> starts one',
    );
  }
  return e;
}
