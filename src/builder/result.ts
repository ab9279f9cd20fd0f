// What a build returns (per-layer outcomes, the dry-run plan) and the errors it throws.
import { errorMessage, OstError } from '../core/errors.js';
import type { LayerManifest } from './build-dir.js';
import type { ImageSet } from './plan/model.js';
import type { PlanEntry } from './plan/plan.js';

export type LayerStatus = 'built' | 'fetched' | 'cached' | 'failed' | 'skipped';

export interface LayerOutcome {
  layer: string;
  status: LayerStatus;
  reason: string;
  durationMs?: number;
  manifest?: LayerManifest;
  error?: LayerBuildError;
}

/** What --dry-run shows for one layer. */
export interface DryRunLayer {
  layer: string;
  action: PlanEntry['action'];
  reason: string;
  key: string;
  steps: { title: string; argv?: string[]; cwd?: string; guest?: string[] }[];
  /** Its repositories' state could not be read: why (the key and the action are then a guess). */
  upstreamUnknown?: string;
}

export interface BuildResult {
  set: ImageSet;
  out: string;
  plan: PlanEntry[];
  outcomes: LayerOutcome[];
  dryRun?: DryRunLayer[];
  /** A dry run whose plan is incomplete: the layers whose repositories could not be read, and why. */
  incomplete?: { layer: string; reason: string }[];
  keyCreated?: boolean;
}

/** A --dry-run printed a plan in which some layers' upstream state is unknown (exit 3). */
export class IncompletePlanError extends OstError {
  constructor(readonly layers: { layer: string; reason: string }[]) {
    const byReason = new Map<string, string[]>();
    for (const l of layers) byReason.set(l.reason, [...(byReason.get(l.reason) ?? []), l.layer]);
    super(
      `the plan is incomplete: the upstream state of ${layers.map((l) => l.layer).join(', ')} could not be read, so whether ${layers.length === 1 ? 'it is' : 'they are'} rebuilt is a guess (planned as a build)\n${[...byReason].map(([why, names]) => `  ${names.join(', ')}: ${why}`).join('\n')}`,
      'run it where the repositories are reachable, or with --offline to plan from the state each layer was last built from',
    );
    this.name = 'IncompletePlanError';
  }
}

/** A layer failed: the cause, the last lines of its log and where the full log is. */
export class LayerBuildError extends OstError {
  constructor(
    readonly layer: string,
    readonly step: string,
    cause: unknown,
    readonly tail: string[],
    readonly logFile: string,
  ) {
    super(`layer ${layer} failed at "${step}": ${errorMessage(cause)}`, `full log: ${logFile}`, cause);
    this.name = 'LayerBuildError';
  }
}

/** Some layers failed; the others were built or left as they were. */
export class BuildFailedError extends OstError {
  constructor(readonly result: BuildResult) {
    const failed = result.outcomes.filter((o) => o.status === 'failed');
    super(
      `${failed.length} layer(s) failed: ${failed.map((o) => o.layer).join(', ')}`,
      'layers that were already built are untouched; fix the cause and run the same command again',
    );
    this.name = 'BuildFailedError';
  }
}
