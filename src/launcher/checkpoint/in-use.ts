// Which checkpoints envs on this host run on: their disks sit on the checkpoint's files, so it must stay.
import { discoverEnvs, isLeftover } from '../env-dir/discover.js';

/** Checkpoint dirs that envs on this host run on (restored from them) → the env ids. */
export async function checkpointsInUse(uri: string, stateRoot: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const e of (await discoverEnvs(uri, stateRoot)).values()) {
    const dir = e.record?.checkpoint?.dir;
    if (!dir || isLeftover(e)) continue;
    out.set(dir, [...(out.get(dir) ?? []), e.id]);
  }
  return out;
}
