// What the phases of one `ost up` share while it runs: the plan, the wiring (libvirt URI, templates,
// reporter), the undo stack every created resource registers with, the timings, and the env record that
// grows as the phases fill it in.

import type { CleanupStack } from '../../core/cleanup.js';
import { InternalError } from '../../core/errors.js';
import type { Reporter } from '../../core/events.js';
import type { EnvRecord } from '../env-dir/record.js';
import type { Identity } from '../images/qemu-user.js';
import type { OstMetadata } from '../libvirt/render.js';
import type { Templates } from '../libvirt/templates.js';
import type { EnvLayout } from '../net/layout.js';
import type { UpPlan } from './plan.js';

export interface UpContext {
  plan: UpPlan;
  uri: string;
  stateRoot: string;
  templates: Templates;
  qemu: Identity;
  /** Per-VM deadline for SSH-ready. */
  timeoutMs: number;
  /** --ipv6-only of an OST suite: the SOCKS helper sshd to start (ost.sh run -6). */
  proxy?: { sshd: string; config: string; user: string };
  reporter: Reporter;
  signal?: AbortSignal;
  undo: CleanupStack;
  /** When the up started (epoch ms). */
  started: number;
  /** Milliseconds per phase (env.json's `timings`). */
  timings: Record<string, number>;
  /** Milliseconds per VM and step (overlay, start, bootToSsh …): each VM record's `timings`. */
  vmTimings: Map<string, Record<string, number>>;
  /** The env record, filled in phase by phase and written to env.json as it grows. */
  record: EnvRecord;
  /** The ost metadata every network and domain carries (libvirt <metadata>). */
  meta: OstMetadata;
  /** The /24s each network got (leases phase), and the layout made of them (networks phase). */
  subnets?: Map<string, string>;
  layout?: EnvLayout;
}

/** The layout, once the networks phase made it (a phase after it that finds none is a bug). */
export function layoutOf(ctx: UpContext): EnvLayout {
  if (!ctx.layout) throw new InternalError('the networks phase has not laid the env out yet');
  return ctx.layout;
}

/**
 * Run `fn` on every item at once and wait for all of them to settle before failing with the first error:
 * the undo of every create that started is registered and its object exists (or not) before unwinding.
 */
export async function settleAll<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  const results = await Promise.allSettled(items.map(fn));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
