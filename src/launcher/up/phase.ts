// The shape of a phase of `ost up` and of a start strategy, and the one runner that carries phases out:
// each phase says what it will do (for --dry-run) and does it (registering its undo), and the runner
// times it as a top-level step. Phases of one group run at once.
import { step } from '../../core/events.js';
import type { VmRecord } from '../env-dir/record.js';
import type { UpContext } from './context.js';
import type { UpPlan, VmPlan } from './plan.js';

/** One thing a phase will do: a command (shown as `$ argv`) or an action in words. */
export interface PlannedStep {
  title: string;
  argv?: string[];
}

export interface Phase {
  /** Its key in env.json's timings (and the reporter's step id). */
  id: string;
  /** Not timed as a step of its own (bookkeeping between phases). */
  untimed?: boolean;
  /** Its title; while running, the context may add what was learnt (an address). */
  title(plan: UpPlan, ctx?: UpContext): string;
  /** Whether this up has nothing for it to do (without a context: as far as the plan tells, for --dry-run). */
  skip?(plan: UpPlan, ctx?: UpContext): boolean;
  steps(plan: UpPlan): PlannedStep[];
  run(ctx: UpContext): Promise<void>;
}

/**
 * How the VMs come up: booted from their images, or restored from a checkpoint. The disks, domains and
 * ready phases hand their per-VM work to it.
 */
export interface StartStrategy {
  /** The VM's root overlay and extra disks, made and handed to qemu. */
  disks(ctx: UpContext, vm: VmPlan): Promise<void>;
  diskSteps(plan: UpPlan, vm: VmPlan): PlannedStep[];
  domainsTitle(plan: UpPlan): string;
  /** Create (or restore) the VM's domain; its undo is registered before libvirt is asked. */
  start(ctx: UpContext, vm: VmRecord, plan: VmPlan): Promise<void>;
  startSteps(plan: UpPlan, vm: VmPlan): PlannedStep[];
  readyTitle(plan: UpPlan): string;
  /** Whether the ready phase waits at all (--no-wait boots return once the domains run). */
  waits(plan: UpPlan): boolean;
  ready(ctx: UpContext): Promise<void>;
  readySteps(plan: UpPlan): PlannedStep[];
}

/** Run one phase as a timed top-level step (or as it is, when untimed or skipped). */
export async function runPhase(ctx: UpContext, p: Phase): Promise<void> {
  if (p.skip?.(ctx.plan, ctx)) return;
  if (p.untimed) return p.run(ctx);
  const started = Date.now();
  await step(ctx.reporter, p.id, p.title(ctx.plan, ctx), () => p.run(ctx));
  ctx.timings[p.id] = Date.now() - started;
}

/**
 * Run the phases in order; an inner array is a group that runs at once. allSettled, so that every undo a
 * phase of the group registers is in place before a failure of another unwinds.
 */
export async function runPhases(
  ctx: UpContext,
  phases: readonly (Phase | readonly Phase[])[],
): Promise<void> {
  for (const p of phases) {
    if (!Array.isArray(p)) {
      await runPhase(ctx, p as Phase);
      continue;
    }
    const results = await Promise.allSettled((p as readonly Phase[]).map((q) => runPhase(ctx, q)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}
