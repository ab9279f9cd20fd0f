// `ost publish-images`: pack a built set, verify it installs, publish it to a DNF repository.

import * as path from 'node:path';
import { loadImageSet } from '../../builder/plan/load.js';
import { type ReleaseResult, releaseSet } from '../../builder/release.js';
import { onInterrupt } from '../../core/cleanup.js';
import type { OstConfig } from '../../core/config.js';
import { InterruptedError } from '../../core/errors.js';
import { cliReporter } from '../reporter.js';
import { setFileWriters } from './common.js';
import { deployedPackagesIn } from './deployed-package.js';

/** The options shared by publish-images and build-images --publish. */
export interface PublishFlags {
  keep?: number;
  squash: string[];
  payload?: string;
  signKey?: string;
}

export const publishFlags = (a: PublishFlags): PublishFlags => ({
  keep: a.keep,
  squash: a.squash,
  payload: a.payload,
  signKey: a.signKey,
});

export interface PublishImagesArgs extends PublishFlags {
  set: string;
  repo: string;
  out?: string;
  json: boolean;
  /** --allow-outside: the set file's host paths may lead outside its folder. */
  allowOutside?: boolean;
}

export function releaseSummary(r: ReleaseResult) {
  return {
    rpms: r.rpms.map((x) => ({
      name: x.name,
      evr: `${x.version}-${x.release}`,
      file: x.file,
      bytes: x.bytes,
      built: x.built,
      buildMs: x.buildMs,
    })),
    unchanged: r.unchanged,
    installMs: r.verify?.installMs,
    added: r.publish?.added ?? [],
    removed: r.publish?.removed ?? [],
    ...(r.skipped.length ? { deployedSkipped: r.skipped } : {}),
  };
}

export function releaseText(r: ReleaseResult, repo: string): string {
  const skipped = r.skipped.map((x) => `deployed package of suite ${x.suite} not published: ${x.reason}`);
  if (r.unchanged || !r.verify || !r.publish)
    return [`nothing new to publish: ${repo} already serves this build of every layer`, ...skipped].join(
      '\n',
    );
  const packed = r.rpms.filter((x) => x.built).length;
  const deployed = r.rpms.filter((x) => x.deployed).map((x) => `${x.name}-${x.version}-${x.release}`);
  return [
    `packed ${packed} new RPM(s) (${r.rpms.length - packed} unchanged), verified install in ` +
      `${(r.verify.installMs / 1000).toFixed(1)}s, published to ${repo}: ${r.publish.added.length} added, ${r.publish.removed.length} removed`,
    ...(deployed.length ? [`with the deployed package(s) ${deployed.join(', ')}`] : []),
    ...skipped,
  ].join('\n');
}

export async function publishImagesCommand(args: PublishImagesArgs, config: OstConfig): Promise<void> {
  const set = loadImageSet(args.set, config.fileVars, {
    allowOutside: args.allowOutside,
    writers: setFileWriters(config),
  });
  const ui = cliReporter({ quiet: args.json });
  const abort = new AbortController();
  const off = onInterrupt(abort, () => process.exit(130));
  const out = path.resolve(args.out ?? path.join('build', set.distro));
  try {
    const r = await releaseSet(set, {
      out,
      repo: args.repo,
      ...publishFlags(args),
      // every suite's deployed layers in the build dir (one made on other builds of the layers is left out)
      deployed: await deployedPackagesIn(
        out,
        set.distro,
        set.layers.map((l) => l.name),
        (message) => ui.reporter({ type: 'warning', message }),
      ),
      reporter: ui.reporter,
      signal: abort.signal,
    });
    ui.stop();
    process.stdout.write(
      args.json ? `${JSON.stringify(releaseSummary(r), null, 2)}\n` : `${releaseText(r, args.repo)}\n`,
    );
  } catch (err) {
    if (abort.signal.aborted)
      throw new InterruptedError('nothing was published; the repository serves the previous set');
    throw err;
  } finally {
    ui.stop();
    off();
  }
}
