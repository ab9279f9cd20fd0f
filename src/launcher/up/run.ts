// `ost up`: the request checked, what it needs read (images, custom layers, the checkpoint, where overlays
// go), the plan made of it, then the phases carried out in order by one runner. Every resource registers
// its undo when it is created; a failure or Ctrl-C undoes all of it in reverse.
import * as path from 'node:path';
import { CleanupStack } from '../../core/cleanup.js';
import { errorMessage, InterruptedError, OstError } from '../../core/errors.js';
import type { Lock } from '../../core/lock.js';
import { self } from '../../core/process.js';
import { requireTools } from '../../core/require-tool.js';
import type { EnvRecord } from '../env-dir/record.js';
import { writeRecord } from '../env-dir/record.js';
import { readTrustedRecord } from '../env-dir/trusted-record.js';
import { lockEnvWaiting } from '../env-lock.js';
import type { UpContext } from './context.js';
import type { UpOptions } from './options.js';
import { type Phase, runPhases, type StartStrategy } from './phase.js';
import { disksPhase, isolatedSubnetsPhase, leasePhase } from './phases/disks-leases.js';
import { envDirPhase, filesPhase, finishPhase, startingMeta, startingRecord } from './phases/env-dir.js';
import { netnsPhase, networksPhase } from './phases/networks.js';
import { deployPhase, domainsPhase, proxyPhase, readyPhase } from './phases/vms.js';
import type { UpPlan } from './plan.js';
import { prepareUp } from './prepare.js';

export type { CustomLayersHook, UpOptions } from './options.js';

import { bootStrategy } from './start-boot.js';
import { restoreStrategy } from './start-restore.js';

/** The phases of a plan, in order (an inner array runs at once), with the start strategy of its mode. */
export function phasesOf(plan: UpPlan): (Phase | Phase[])[] {
  const strategy: StartStrategy = plan.mode === 'boot' ? bootStrategy : restoreStrategy;
  return [
    envDirPhase,
    // overlays and leases do not depend on each other
    [disksPhase(strategy), plan.isolated ? isolatedSubnetsPhase : leasePhase],
    networksPhase,
    netnsPhase,
    filesPhase,
    domainsPhase(strategy),
    readyPhase(strategy),
    proxyPhase,
    deployPhase,
    finishPhase,
  ];
}

/** Bring an environment up; resolves once every VM is SSH-ready (or, with wait: false, once they run). */
export async function up(o: UpOptions): Promise<EnvRecord> {
  requireTools(['virsh', 'qemu-img', 'ssh']);
  const started = Date.now();
  const timings: Record<string, number> = {};
  const undo = new CleanupStack();
  let plan: UpPlan | undefined;
  let lock: Lock | undefined;
  try {
    const prepared = await prepareUp(o, timings);
    plan = prepared.plan;
    // the env's lock for the whole up, undo included: an ost down or gc of the id waits for it (a stale gc
    // cannot tear down an up --from that takes the id of an env it found left over)
    lock = await lockEnvWaiting(o.stateRoot, plan.id, `ost up ${o.env.suite}`, UP_LOCK_WAIT_MS, o.reporter);
    const owner = self();
    const ctx: UpContext = {
      plan,
      uri: o.uri,
      stateRoot: o.stateRoot,
      templates: o.templates,
      qemu: prepared.qemu,
      timeoutMs: o.timeoutMs,
      proxy: prepared.proxy,
      reporter: o.reporter,
      signal: o.signal,
      undo,
      started,
      timings,
      vmTimings: new Map(plan.vms.map((vm) => [vm.name, {}])),
      record: startingRecord(plan, owner, timings),
      meta: startingMeta(plan, owner),
    };
    await runPhases(ctx, phasesOf(plan));
    return ctx.record;
  } catch (err) {
    if (plan && o.keepOnFailure && !o.signal?.aborted && undo.size > 0) {
      // left as it is for debugging (console logs, ost ssh); it counts as a leftover for ost gc
      const left = await readTrustedRecord(plan.workdir);
      if (left) await writeRecord({ ...left, status: 'failed' });
      throw new OstError(
        `${errorMessage(err)}\nenvironment ${plan.id} was left as it is (--keep-on-failure)`,
        `look at ${path.join(plan.workdir, 'logs')}/, then ost down ${plan.id}`,
        err,
      );
    }
    await undo.unwind(o.reporter);
    if (o.signal?.aborted)
      throw new InterruptedError(`ost up ${o.env.suite}; everything it created was removed`);
    throw err;
  } finally {
    await lock?.release();
  }
}

/** How long an up waits for a command still at work on an env of the same id (a down before up --from). */
const UP_LOCK_WAIT_MS = 60_000;
