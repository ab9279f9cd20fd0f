// `ost checkpoint / revert / rm-checkpoint`, `ost list --checkpoints`, `ost gc --checkpoints`: thin handlers
// over src/launcher/checkpoint.
import { onInterrupt } from '../../core/cleanup.js';
import type { OstConfig } from '../../core/config.js';
import { OstError } from '../../core/errors.js';
import { checkpointsInUse } from '../../launcher/checkpoint/in-use.js';
import { revert } from '../../launcher/checkpoint/restore.js';
import {
  gcCheckpoints,
  listCheckpoints,
  readCheckpoint,
  removeCheckpoint,
  type StoredCheckpoint,
} from '../../launcher/checkpoint/store.js';
import { takeCheckpoint } from '../../launcher/checkpoint/take.js';
import { loadEnvironment } from '../../launcher/env/load.js';
import type { Environment } from '../../launcher/env/model.js';
import { loadOstJson } from '../../launcher/env/ost-json.js';
import { type EnvRecord, stateRoot } from '../../launcher/env-dir/record.js';
import { libvirtUri } from '../../tools/virsh.js';
import { cliReporter } from '../reporter.js';
import { type CheckpointCommon, rootOf } from './common.js';

export type { CheckpointCommon } from './common.js';

const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const secs = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)}s`);

/** The suite an env was started from, as its file reads now (for the content key); none if it is gone. */
const suiteOf =
  (config: OstConfig) =>
  (r: EnvRecord): Environment | undefined => {
    try {
      return r.kind === 'ost-json'
        ? loadOstJson(r.source, config.imageVars)
        : loadEnvironment(r.source, r.suite);
    } catch {
      return undefined;
    }
  };

/** Checkpoint dirs that envs on this host run on (restored from them), with the env ids. */
const inUse = (a: CheckpointCommon, config: OstConfig) =>
  checkpointsInUse(libvirtUri(a.connect, config.libvirtUri), stateRoot(config));

function describeCheckpoint(c: StoredCheckpoint): string {
  const r = c.record;
  const mem = r.vms.reduce((n, v) => n + v.memoryBytes, 0);
  const disk = r.vms.reduce((n, v) => n + v.diskBytes, 0);
  return (
    `checkpoint ${c.name} of environment ${r.env.id} (suite ${r.env.suite}, ${r.vms.length} VMs${r.deployed ? ', deployed' : ''}): ` +
    `${mib(c.sizeBytes)} (memory ${mib(mem)}, disks ${mib(disk)}) in ${c.dir}\n` +
    `  VMs paused ${secs(r.timings.pause)}, checkpoint took ${secs(r.timings.total)}`
  );
}

export async function checkpointCommand(
  a: CheckpointCommon & { env?: string; name: string; stop: boolean; force: boolean },
  config: OstConfig,
): Promise<void> {
  const ui = cliReporter({ quiet: a.json });
  // Ctrl-C (or SIGTERM, SIGHUP) while the VMs are paused: they are resumed, the draft removed
  const abort = new AbortController();
  const off = onInterrupt(abort, () => process.exit(130));
  try {
    const c = await takeCheckpoint({
      uri: libvirtUri(a.connect, config.libvirtUri),
      stateRoot: stateRoot(config),
      root: rootOf(a, config),
      env: a.env,
      name: a.name,
      stop: a.stop,
      replace: a.force,
      suiteOf: suiteOf(config),
      reporter: ui.reporter,
      signal: abort.signal,
    });
    ui.stop();
    process.stdout.write(
      a.json
        ? `${JSON.stringify({ name: c.name, dir: c.dir, sizeBytes: c.sizeBytes, record: c.record }, null, 2)}\n`
        : `${describeCheckpoint(c)}\n  ${a.stop ? `the env stays paused: ost revert ${c.record.env.id} ${c.name}, or ost down` : 'the env runs on'}; ` +
            `back to it: ost revert ${c.record.env.id} ${c.name}; a new env from it: ost up ${c.record.env.suite} --from ${c.name}\n`,
    );
  } finally {
    ui.stop();
    off();
  }
}

export async function revertCommand(
  a: CheckpointCommon & { env?: string; name: string; timeout: number },
  config: OstConfig,
): Promise<void> {
  const ui = cliReporter({ quiet: a.json });
  // Ctrl-C (or SIGTERM, SIGHUP) before the VMs are stopped: nothing changes; after: the revert finishes
  const abort = new AbortController();
  const off = onInterrupt(abort, () => process.exit(130));
  try {
    const r = await revert({
      uri: libvirtUri(a.connect, config.libvirtUri),
      stateRoot: stateRoot(config),
      root: rootOf(a, config),
      env: a.env,
      name: a.name,
      timeoutMs: a.timeout * 1000,
      reporter: ui.reporter,
      signal: abort.signal,
    });
    ui.stop();
    process.stdout.write(
      a.json
        ? `${JSON.stringify(r, null, 2)}\n`
        : `environment ${r.id} is back at checkpoint ${a.name} (${secs(r.timings.revert)}): ${r.vms.map((vm) => `${vm.name} ${vm.address}`).join(', ')}\n`,
    );
  } finally {
    ui.stop();
    off();
  }
}

export async function rmCheckpointCommand(
  a: CheckpointCommon & { name: string },
  config: OstConfig,
): Promise<void> {
  const root = rootOf(a, config);
  const c = await readCheckpoint(root, a.name);
  const users = (await inUse(a, config)).get(c.dir);
  if (users)
    throw new OstError(
      `checkpoint ${a.name} is in use: environment${users.length > 1 ? 's' : ''} ${users.join(', ')} run${users.length > 1 ? '' : 's'} on its disks`,
      `ost down ${users.join(' ')} first`,
    );
  await removeCheckpoint(root, a.name);
  process.stdout.write(
    a.json
      ? `${JSON.stringify({ removed: c.name, bytes: c.sizeBytes })}\n`
      : `removed checkpoint ${c.name} (${mib(c.sizeBytes)})\n`,
  );
}

export async function listCheckpointsCommand(a: CheckpointCommon, config: OstConfig): Promise<void> {
  const root = rootOf(a, config);
  const all = await listCheckpoints(root);
  const users = await inUse(a, config);
  if (a.json) {
    process.stdout.write(
      `${JSON.stringify(
        all.map((c) => ({
          name: c.name,
          dir: c.dir,
          sizeBytes: c.sizeBytes,
          created: c.record.created,
          env: c.record.env.id,
          suite: c.record.env.suite,
          vms: c.record.vms.map((v) => v.name),
          deployed: c.record.deployed,
          key: c.record.key,
          usedBy: users.get(c.dir) ?? [],
        })),
        null,
        2,
      )}\n`,
    );
    return;
  }
  if (all.length === 0) {
    process.stdout.write(`no checkpoints in ${root}\n`);
    return;
  }
  process.stdout.write(
    `${'NAME'.padEnd(24)} ${'SUITE'.padEnd(14)} ${'ENV'.padEnd(8)} ${'CREATED'.padEnd(20)} VMS ${'SIZE'.padStart(9)} USED BY\n`,
  );
  for (const c of all)
    process.stdout.write(
      `${c.name.padEnd(24)} ${c.record.env.suite.padEnd(14)} ${c.record.env.id.padEnd(8)} ${c.record.created.slice(0, 19).padEnd(20)} ${String(c.record.vms.length).padStart(3)} ${mib(c.sizeBytes).padStart(9)} ${(users.get(c.dir) ?? []).join(',') || '-'}\n`,
    );
  const total = all.reduce((n, c) => n + c.sizeBytes, 0);
  process.stdout.write(`${all.length} checkpoint${all.length === 1 ? '' : 's'}, ${mib(total)} in ${root}\n`);
}

export async function gcCheckpointsCommand(
  a: CheckpointCommon & { keepDays?: number },
  config: OstConfig,
): Promise<void> {
  const root = rootOf(a, config);
  const r = await gcCheckpoints(root, {
    keepDays: a.keepDays,
    inUse: new Set((await inUse(a, config)).keys()),
  });
  process.stdout.write(
    a.json
      ? `${JSON.stringify(r, null, 2)}\n`
      : r.partial.length + r.expired.length === 0
        ? 'nothing to remove\n'
        : `${[...r.partial.map((d) => `removed the unfinished ${d}`), ...r.expired.map((n) => `removed checkpoint ${n} (older than ${a.keepDays} days)`)].join('\n')}\n`,
  );
}
