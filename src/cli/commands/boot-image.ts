// `ost boot-image`: boot a throwaway VM from a built layer and log in with the set's key.

import * as path from 'node:path';
import { bootAndSsh } from '../../builder/boot.js';
import { BuildPaths } from '../../builder/build-dir.js';
import { loadImageSet } from '../../builder/plan/load.js';
import { leavesOf } from '../../builder/plan/model.js';
import { detectAccel } from '../../core/accel.js';
import { onInterrupt } from '../../core/cleanup.js';
import type { OstConfig } from '../../core/config.js';
import { OstError } from '../../core/errors.js';
import { cliReporter } from '../reporter.js';
import { setFileWriters } from './common.js';

export interface BootImageArgs {
  set?: string;
  image?: string;
  key?: string;
  layer?: string;
  out?: string;
  timeout: number;
  memory: number;
  command?: string;
  json: boolean;
  /** --allow-outside: the set file's host paths may lead outside its folder. */
  allowOutside?: boolean;
}

/** Which image and key to boot: an explicit --image/--key, or a layer of a built set. */
function target(args: BootImageArgs, config: OstConfig): { image: string; key: string; label: string } {
  if (args.image || args.key) {
    if (!args.image || !args.key) throw new OstError('--image and --key go together');
    return { image: path.resolve(args.image), key: path.resolve(args.key), label: path.basename(args.image) };
  }
  if (!args.set) throw new OstError('name an image-set file (and layer), or pass --image and --key');
  const set = loadImageSet(args.set, config.fileVars, {
    allowOutside: args.allowOutside,
    writers: setFileWriters(config),
  });
  const names = set.layers.map((l) => l.name);
  const layer = args.layer ?? leavesOf(set)[0];
  if (!layer || !names.includes(layer)) {
    throw new OstError(`no layer ${args.layer} in ${set.file}`, `layers are: ${names.join(', ')}`);
  }
  const paths = new BuildPaths(path.resolve(args.out ?? path.join('build', set.distro)), set.distro);
  return { image: paths.image(layer), key: paths.privateKey(), label: `${set.distro}-${layer}` };
}

export async function bootImageCommand(args: BootImageArgs, config: OstConfig): Promise<void> {
  const t = target(args, config);
  const ui = cliReporter({ quiet: args.json });
  const abort = new AbortController();
  const off = onInterrupt(abort, () => process.exit(130));
  try {
    ui.reporter({
      type: 'step',
      id: 'boot',
      title: `boot ${path.basename(t.image)}`,
      status: 'start',
    });
    const res = await bootAndSsh({
      image: t.image,
      privateKey: t.key,
      timeoutMs: args.timeout * 1000,
      memoryMiB: args.memory,
      accel: detectAccel(config.accel),
      command: args.command ?? 'hostname; . /etc/os-release; echo "$PRETTY_NAME"; uname -r',
      reporter: ui.reporter,
      signal: abort.signal,
    });
    ui.reporter({
      type: 'step',
      id: 'boot',
      title: `boot ${path.basename(t.image)}`,
      status: 'done',
      durationMs: res.bootToSshMs,
    });
    ui.stop();
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ image: t.image, ...res }, null, 2)}\n`);
    } else {
      process.stdout.write(
        `${t.label}: SSH answered with ${path.basename(t.key)} after ` +
          `${(res.bootToSshMs / 1000).toFixed(1)}s, system ${res.systemState}` +
          `${res.marker ? ', readiness marker on its console' : ''}\n${(res.commandOutput ?? '').trimEnd()}\n`,
      );
    }
  } finally {
    ui.stop();
    off();
  }
}
