// The scheduler: cached and skipped layers first, then every layer whose parent is ready, at most `jobs` at a
// time; a failed or skipped parent skips its children; an abort stops starting new layers.
import type { Reporter } from '../core/events.js';
import type { BuildPaths } from './build-dir.js';
import type { BuildHost } from './layer-kinds/types.js';
import type { ImageSet, Layer } from './plan/model.js';
import type { PlanEntry } from './plan/plan.js';
import { LayerBuildError, type LayerOutcome } from './result.js';
import { buildLayer, contextFor, fetchWithEvents } from './run-layer.js';

/** Build or fetch every planned layer, parents before children; returns one outcome per layer, in plan order. */
export async function schedule(
  set: ImageSet,
  plan: PlanEntry[],
  paths: BuildPaths,
  host: BuildHost,
  publicKey: string,
  jobs: number,
  reporter: Reporter,
  signal: AbortSignal | undefined,
  cacheRepo?: string,
): Promise<LayerOutcome[]> {
  const outcomes = new Map<string, LayerOutcome>();
  recordUnbuilt(plan, outcomes, reporter);
  const run: LayerRun = { set, paths, host, publicKey, reporter, signal, cacheRepo, outcomes };
  const running = new Map<string, Promise<void>>();
  for (;;) {
    for (const e of plan) {
      const name = e.layer.name;
      if (outcomes.has(name) || running.has(name)) continue;
      const p = e.layer.parent ? outcomes.get(e.layer.parent) : undefined;
      if (e.layer.parent && (p?.status === 'failed' || p?.status === 'skipped')) {
        const reason = `parent ${e.layer.parent} ${p.status === 'failed' ? 'failed' : 'was not built'}`;
        outcomes.set(name, { layer: name, status: 'skipped', reason });
        reporter({ type: 'step', id: name, title: name, status: 'skipped', detail: reason });
        continue;
      }
      if (signal?.aborted) {
        outcomes.set(name, { layer: name, status: 'skipped', reason: 'interrupted' });
        continue;
      }
      const ready =
        !e.layer.parent || p?.status === 'built' || p?.status === 'fetched' || p?.status === 'cached';
      if (!ready || running.size >= jobs) continue;
      running.set(
        name,
        startLayer(run, e).finally(() => running.delete(name)),
      );
    }
    if (running.size === 0) break;
    await Promise.race(running.values());
  }
  return plan.map(
    (e) => outcomes.get(e.layer.name) ?? { layer: e.layer.name, status: 'skipped', reason: 'not reached' },
  );
}

/** What every layer's build or fetch shares, and the outcomes it records into. */
interface LayerRun {
  set: ImageSet;
  paths: BuildPaths;
  host: BuildHost;
  publicKey: string;
  reporter: Reporter;
  signal: AbortSignal | undefined;
  cacheRepo: string | undefined;
  outcomes: Map<string, LayerOutcome>;
}

/** Record the layers that need no work (cached, skipped) before any starts, and report them. */
function recordUnbuilt(plan: PlanEntry[], outcomes: Map<string, LayerOutcome>, reporter: Reporter): void {
  for (const e of plan) {
    if (e.action === 'cached') {
      outcomes.set(e.layer.name, {
        layer: e.layer.name,
        status: 'cached',
        reason: e.reason,
        manifest: e.manifest,
      });
      reporter({ type: 'step', id: e.layer.name, title: e.layer.name, status: 'cached', detail: e.reason });
    } else if (e.action === 'skip') {
      outcomes.set(e.layer.name, { layer: e.layer.name, status: 'skipped', reason: e.reason });
      reporter({ type: 'step', id: e.layer.name, title: e.layer.name, status: 'skipped', detail: e.reason });
    }
  }
}

/** Start one layer (fetched from the cache repo on a hit, else built); it records its outcome at the end. */
function startLayer(run: LayerRun, e: PlanEntry): Promise<void> {
  const { outcomes, reporter } = run;
  const name = e.layer.name;
  const parentManifest = (l: Layer) => (l.parent ? outcomes.get(l.parent)?.manifest : undefined);
  const ctx = contextFor(run.set, e.layer, e.key, run.paths, run.host, run.publicKey);
  const started = Date.now();
  const work =
    e.action === 'fetch' && e.hit && run.cacheRepo
      ? fetchWithEvents(run.cacheRepo, e.hit, run.paths, name, ctx.work, reporter)
      : buildLayer(ctx, parentManifest(e.layer), e.upstream, reporter, run.signal);
  return work
    .then((manifest) => {
      outcomes.set(name, {
        layer: name,
        status: e.action === 'fetch' ? 'fetched' : 'built',
        reason: e.reason,
        durationMs: Date.now() - started,
        manifest,
      });
    })
    .catch((err: unknown) => {
      const error =
        err instanceof LayerBuildError ? err : new LayerBuildError(name, 'build', err, [], ctx.logFile);
      outcomes.set(name, {
        layer: name,
        status: 'failed',
        reason: e.reason,
        durationMs: Date.now() - started,
        error,
      });
    });
}
