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
}

export interface BuildResult {
  set: ImageSet;
  out: string;
  plan: PlanEntry[];
  outcomes: LayerOutcome[];
  dryRun?: DryRunLayer[];
  keyCreated?: boolean;
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
