// `ost up`: the request checked, what it needs read (images, custom layers, the checkpoint, where overlays
// go), the plan made of it, then the phases carried out in order by one runner. Every resource registers
// its undo when it is created; a failure or Ctrl-C undoes all of it in reverse.
import * as path from 'node:path';
import { CleanupStack } from '../../core/cleanup.js';
import { errorMessage, InterruptedError, OstError } from '../../core/errors.js';
import type { Reporter } from '../../core/events.js';
import { self } from '../../core/process.js';
import { requireTools } from '../../core/require-tool.js';
import type { StoredCheckpoint } from '../checkpoint/store.js';
import type { Environment } from '../env/model.js';
import type { ResolvedImage } from '../images/resolve.js';
import type { Templates } from '../libvirt/templates.js';
import type { IpMode } from '../net/layout.js';
import type { AppliedCustomLayer, EnvRecord } from '../state/record.js';
import { readRecord, writeRecord } from '../state/record.js';
import type { UpContext } from './context.js';
import { type Phase, runPhases, type StartStrategy } from './phase.js';
import { disksPhase, isolatedSubnetsPhase, leasePhase } from './phases/disks-leases.js';
import {
  envDirPhase,
  filesPhase,
  finishPhase,
  handOver,
  startingMeta,
  startingRecord,
} from './phases/env-dir.js';
import { netnsPhase, networksPhase } from './phases/networks.js';
import { deployPhase, domainsPhase, proxyPhase, readyPhase } from './phases/vms.js';
import type { UpPlan } from './plan.js';
import { prepareUp } from './prepare.js';
import { bootStrategy } from './start-boot.js';
import { restoreStrategy } from './start-restore.js';

export interface UpOptions {
  env: Environment;
  /** Env id: 8 hex digits (default: random, as lagofy's uuidgen | cut -c -8). */
  id?: string;
  /** OST suites: the deployment dir (default `<OST checkout>/deployment`; the CLI passes $OST_DEPLOYMENT). */
  deployment?: string;
  /** Address families: both (default), or IPv4 / IPv6 only (ost.sh run -4 / -6). */
  ipMode?: IpMode;
  /** OST suites: run their deploy scripts too (OST's pytest runs them otherwise). ost-env suites always do. */
  deploy?: boolean;
  /** Hand the deployment dir to this user (sudo's SUDO_UID/SUDO_GID), as ost.sh's would be theirs. */
  owner?: { uid: number; gid: number };
  /** OST suites with IPv6 only: the user the SOCKS helper sshd lets in (who runs OST's pytest). */
  proxyUser?: string;
  uri: string;
  stateRoot: string;
  overlays: { root: string; fallback: string; reservePerVmBytes: number };
  templates: Templates;
  images: { root?: string; imagesDir?: string; key?: string };
  /** Per-VM deadline for SSH-ready. */
  timeoutMs: number;
  /**
   * Wait for every VM to answer SSH (default). `false` returns once the domains run, as lagofy's ost_init
   * does (OST's harness waits for SSH itself); no deploy script can run then.
   */
  wait?: boolean;
  /** On failure, leave what was created (for debugging) instead of undoing it. */
  keepOnFailure?: boolean;
  /** ost up --custom-repo: start the VMs from custom layers on their images (made by the caller's hook). */
  custom?: CustomLayersHook;
  /** ost up --from: restore the VMs from this checkpoint instead of booting them. */
  from?: StoredCheckpoint;
  /**
   * With `from`: a new env of its own beside the one the checkpoint was taken of — new id and names, the
   * same subnets and addresses inside a network namespace of its own (net/isolated.ts).
   */
  isolated?: boolean;
  /**
   * The images as already resolved for this up, by imageKey, and how long that took (`--checkpoint-cache`:
   * the ones its key names); resolved here otherwise.
   */
  resolved?: { images: Map<string, ResolvedImage>; ms: number };
  reporter: Reporter;
  signal?: AbortSignal;
}

/**
 * Custom layers come from the image builder; the CLI passes them in through this hook, so the launcher
 * never imports the builder. `prepare` returns each image's layer, or undefined when it runs as it is.
 */
export interface CustomLayersHook {
  repos: string[];
  install: string[];
  prepare(images: ResolvedImage[]): Promise<Map<string, AppliedCustomLayer | undefined>>;
}

/** The phases of a plan, in order (an inner array runs at once), with the start strategy of its mode. */
export function phasesOf(plan: UpPlan): (Phase | Phase[])[] {
  const strategy: StartStrategy = plan.mode === 'boot' ? bootStrategy : restoreStrategy;
  return [
    envDirPhase,
    // overlays and leases do not depend on each other
    [disksPhase(strategy), plan.mode === 'isolated-restore' ? isolatedSubnetsPhase : leasePhase],
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
  try {
    const prepared = await prepareUp(o, timings);
    plan = prepared.plan;
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
      const left = await readRecord(plan.workdir);
      if (left) await writeRecord({ ...left, status: 'failed' });
      if (left) await handOver(plan, left);
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
  }
}
