// `ost boot-image`: boot a throwaway VM from a built layer and log in with the set's key.
import * as path from 'node:path';
import { bootAndSsh } from '../../builder/boot.js';
import { loadImageSet } from '../../builder/plan/load.js';
import { BuildPaths } from '../../builder/state.js';
import { onInterrupt } from '../../core/cleanup.js';
import { OstError } from '../../core/errors.js';
import { cliReporter } from '../reporter.js';

export interface BootImageArgs {
  set: string;
  layer?: string;
  out?: string;
  timeout: number;
  memory: number;
  command?: string;
  json: boolean;
}

export async function bootImageCommand(args: BootImageArgs): Promise<void> {
  const set = loadImageSet(args.set);
  const names = set.layers.map((l) => l.name);
  const leaves = set.layers.filter((l) => !set.layers.some((c) => c.parent === l.name)).map((l) => l.name);
  const layer = args.layer ?? leaves[0];
  if (!layer || !names.includes(layer)) {
    throw new OstError(`no layer ${args.layer} in ${set.file}`, `layers are: ${names.join(', ')}`);
  }
  const paths = new BuildPaths(path.resolve(args.out ?? path.join('build', set.distro)), set.distro);
  const ui = cliReporter({ quiet: args.json });
  const abort = new AbortController();
  const off = onInterrupt(abort, () => process.exit(130));
  try {
    ui.reporter({
      type: 'step',
      id: 'boot',
      title: `boot ${path.basename(paths.image(layer))}`,
      status: 'start',
    });
    const res = await bootAndSsh({
      image: paths.image(layer),
      privateKey: paths.privateKey(),
      timeoutMs: args.timeout * 1000,
      memoryMiB: args.memory,
      command: args.command ?? 'hostname; . /etc/os-release; echo "$PRETTY_NAME"; uname -r',
      reporter: ui.reporter,
      signal: abort.signal,
    });
    ui.reporter({
      type: 'step',
      id: 'boot',
      title: `boot ${path.basename(paths.image(layer))}`,
      status: 'done',
      durationMs: res.bootToSshMs,
    });
    ui.stop();
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ layer, image: paths.image(layer), ...res }, null, 2)}\n`);
    } else {
      process.stdout.write(
        `${set.distro}-${layer}: SSH answered with ${path.basename(paths.privateKey())} after ` +
          `${(res.bootToSshMs / 1000).toFixed(1)}s, system ${res.systemState}\n${(res.commandOutput ?? '').trimEnd()}\n`,
      );
    }
  } finally {
    ui.stop();
    off();
  }
}
