// The command table. Each handler is thin; errors are rendered once, here.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { DEFAULT_PAYLOAD, payloadProblem } from '../builder/rpm/spec.js';
import { sizeToBytes } from '../core/units.js';
import { ENV_ID } from '../launcher/net/layout.js';
import { bootImageCommand } from './commands/boot-image.js';
import { buildImagesCommand } from './commands/build-images.js';
import {
  checkpointCommand,
  gcCheckpointsCommand,
  listCheckpointsCommand,
  revertCommand,
  rmCheckpointCommand,
} from './commands/checkpoint.js';
import {
  consoleCommand,
  downCommand,
  execCommand,
  gcCommand,
  listCommand,
  sshCommand,
  statusCommand,
  upCommand,
} from './commands/env.js';
import { publishImagesCommand } from './commands/publish-images.js';
import { exitCodeFor, renderError } from './errors.js';

/** yargs coerce for a whole-number flag in [min, max]: `--jobs abc` is an error, never NaN or "unlimited". */
function wholeNumber(flag: string, min: number, max: number) {
  return (v: unknown): number => {
    const text = String(v);
    const n = Number(text);
    if (!/^[0-9]+$/.test(text.trim()) || n < min || n > max)
      throw new Error(`--${flag} ${text}: expected a whole number from ${min} to ${max}`);
    return n;
  };
}

/** yargs coerce for a size flag (`1G`, `512M`, bytes) into bytes: a bad one is a usage error, not a crash later. */
function sizeFlag(flag: string) {
  return (v: unknown): number => {
    const text = String(v);
    try {
      return sizeToBytes(text);
    } catch {
      throw new Error(`--${flag} ${text}: expected a size such as 512M, 1G or 1.5G`);
    }
  };
}

/** yargs coerce for --payload: the forms rpmbuild takes (checked by the spec writer too). */
function payloadFlag(v: unknown): string {
  const problem = payloadProblem(String(v));
  if (problem) throw new Error(`--payload ${problem.replace(/^bad payload /, '')}`);
  return String(v);
}

/** yargs coerce for --id: 8 lowercase hex digits, as lagofy's ids. */
function envIdFlag(v: unknown): string {
  const text = String(v);
  if (!ENV_ID.test(text)) throw new Error(`--id ${text}: expected 8 lowercase hex digits, e.g. 0a1b2c3d`);
  return text;
}

const publishOptions = {
  keep: {
    type: 'string',
    coerce: wholeNumber('keep', 1, 10_000),
    describe: 'keep this many complete sets in the repo',
  },
  squash: {
    type: 'string',
    array: true,
    default: [] as string[],
    describe: 'also pack LAYER as one standalone qcow2',
  },
  payload: {
    type: 'string',
    coerce: payloadFlag,
    describe: `RPM payload compression (default ${DEFAULT_PAYLOAD})`,
  },
  'sign-key': { type: 'string', describe: 'GPG key id to sign RPMs and repomd.xml with' },
} as const;

const connect = {
  connect: { type: 'string', describe: 'libvirt URI (default: $LIBVIRT_DEFAULT_URI or qemu:///system)' },
} as const;
const envOption = {
  env: {
    type: 'string',
    describe: 'environment id, or a suite with one environment (default: the only one)',
  },
} as const;
const layerOptions = {
  layers: { type: 'boolean', default: false, describe: 'the custom layer cache (ost up --custom-repo)' },
  'layer-cache': { type: 'string', describe: 'default: $OST_LAYER_CACHE, else /var/cache/ost/layers' },
} as const;
const checkpointDirOption = {
  'checkpoint-dir': {
    type: 'string',
    describe:
      'checkpoint store (default: $OST_CHECKPOINT_DIR, else /var/lib/ost/checkpoints; ~/.local/share/ost/checkpoints when not root)',
  },
} as const;
const timeoutOption = {
  timeout: {
    type: 'string',
    default: '600',
    coerce: wholeNumber('timeout', 1, 86_400),
    describe: 'seconds each VM may take to be SSH-ready',
  },
} as const;
const jsonOption = {
  json: { type: 'boolean', default: false, describe: 'machine-readable result on stdout' },
} as const;

export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const fail = (err: unknown) => {
    process.stderr.write(`${renderError(err)}\n`);
    code = exitCodeFor(err);
  };
  await yargs(hideBin(['node', 'ost', ...argv]))
    .scriptName('ost')
    .parserConfiguration({ 'populate--': true })
    .usage('$0 <command> [options]\n\nBuild layered OST VM images and run OST environments from them.')
    .command(
      'build-images <set..>',
      'Build an image set (images/<distro>.yaml) into verified layered qcow2 images',
      (y) =>
        y
          .positional('set', {
            type: 'string',
            array: true,
            demandOption: true,
            describe: 'image-set file(s)',
          })
          .option('out', { type: 'string', describe: 'output directory (default: build/<distro>)' })
          .option('jobs', {
            type: 'string',
            default: '2',
            coerce: wholeNumber('jobs', 1, 64),
            describe: 'layers built at the same time',
          })
          .option('force', {
            type: 'string',
            array: true,
            default: [],
            describe: 'rebuild LAYER (and its descendants)',
          })
          .option('only', {
            type: 'string',
            array: true,
            default: [],
            describe: 'build only LAYER (and its missing ancestors)',
          })
          .option('dry-run', {
            type: 'boolean',
            default: false,
            describe: 'print the plan and the exact commands',
          })
          .option('json', { type: 'boolean', default: false, describe: 'machine-readable result on stdout' })
          .option('verbose', {
            alias: 'v',
            type: 'boolean',
            default: false,
            describe: 'show every step and command',
          })
          .option('offline', {
            type: 'boolean',
            default: false,
            describe: "don't read the package repositories' state: keep what each layer was last built from",
          })
          .option('cache-repo', {
            type: 'string',
            describe: 'fetch layers with the same key from this repo (dir or URL)',
          })
          .option('with-repo', {
            type: 'string',
            array: true,
            default: [] as string[],
            describe:
              'build the leaves with the packages of this folder of .deb/.rpm files or repository upgraded in (repeatable)',
          })
          .option('with-install', {
            type: 'string',
            array: true,
            default: [] as string[],
            describe: 'with --with-repo: also install this new package into the leaves (repeatable)',
          })
          .option('skip-custom-check', {
            type: 'boolean',
            default: false,
            describe: 'with --with-repo: accept a build to which a repo supplied nothing',
          })
          .option('publish', {
            type: 'string',
            describe: 'then pack, verify and publish the set to this repo dir',
          })
          .options(publishOptions),
      async (a) => {
        await buildImagesCommand({
          cacheRepo: a['cache-repo'],
          withRepo: a['with-repo'],
          withInstall: a['with-install'],
          skipCustomCheck: a['skip-custom-check'],
          offline: a.offline,
          publish: a.publish,
          keep: a.keep,
          squash: a.squash as string[],
          payload: a.payload,
          signKey: a['sign-key'],
          set: a.set as string[],
          out: a.out,
          jobs: a.jobs,
          force: a.force as string[],
          only: a.only as string[],
          dryRun: a['dry-run'],
          json: a.json,
          verbose: a.verbose,
        }).catch(fail);
      },
    )
    .command(
      'publish-images <set>',
      'Pack a built set into RPMs, verify they install, publish them to a DNF repository',
      (y) =>
        y
          .positional('set', { type: 'string', demandOption: true, describe: 'image-set file' })
          .option('repo', { type: 'string', demandOption: true, describe: 'repository directory' })
          .option('out', { type: 'string', describe: 'build directory (default: build/<distro>)' })
          .option('json', { type: 'boolean', default: false, describe: 'machine-readable result on stdout' })
          .options(publishOptions),
      async (a) => {
        await publishImagesCommand({
          set: a.set as string,
          repo: a.repo,
          out: a.out,
          keep: a.keep,
          squash: a.squash as string[],
          payload: a.payload,
          signKey: a['sign-key'],
          json: a.json,
        }).catch(fail);
      },
    )
    .command(
      'boot-image [set] [layer]',
      'Boot a throwaway VM from a built layer and wait until SSH answers with the set key',
      (y) =>
        y
          .positional('set', { type: 'string', describe: 'image-set file (or use --image and --key)' })
          .positional('layer', { type: 'string', describe: 'layer to boot (default: the first leaf)' })
          .option('image', { type: 'string', describe: 'boot this qcow2 instead (e.g. an installed one)' })
          .option('key', { type: 'string', describe: 'private key for --image' })
          .option('out', { type: 'string', describe: 'build directory (default: build/<distro>)' })
          .option('timeout', {
            type: 'string',
            default: '600',
            coerce: wholeNumber('timeout', 1, 86_400),
            describe: 'seconds to wait for SSH',
          })
          .option('memory', {
            type: 'string',
            default: '1024',
            coerce: wholeNumber('memory', 256, 1_048_576),
            describe: 'MiB of guest memory',
          })
          .option('command', { type: 'string', describe: 'command to run over SSH once it answers' })
          .option('json', { type: 'boolean', default: false, describe: 'machine-readable result on stdout' }),
      async (a) => {
        await bootImageCommand({
          set: a.set,
          image: a.image,
          key: a.key,
          layer: a.layer,
          out: a.out,
          timeout: a.timeout,
          memory: a.memory,
          command: a.command,
          json: a.json,
        }).catch(fail);
      },
    )
    .command(
      'up [suite]',
      'Start a suite of ost-env.yaml (or an OST ost.json) from the installed ost-images RPMs',
      (y) =>
        y
          .positional('suite', { type: 'string', describe: 'suite in ost-env.yaml (e.g. demo-suite)' })
          .option('env-file', {
            type: 'string',
            describe: 'ost-env.yaml to read (default: ./ost-env.yaml, else the bundled one)',
          })
          .option('env', {
            type: 'string',
            describe: "OST's own suite file (path/to/ost.json) instead of ost-env.yaml",
          })
          .option('ost-repo', {
            type: 'string',
            describe: 'an OST checkout: ost up <suite> --ost-repo DIR reads DIR/<suite>/ost.json',
          })
          .option('deploy', {
            type: 'boolean',
            default: false,
            describe: "OST suites: run their deploy scripts too (OST's pytest runs them otherwise)",
          })
          .option('ipv4-only', { type: 'boolean', describe: 'networks with IPv4 only (ost.sh run -4)' })
          .option('ipv6-only', { type: 'boolean', describe: 'networks with IPv6 only (ost.sh run -6)' })
          .option('id', {
            type: 'string',
            coerce: envIdFlag,
            describe: 'environment id: 8 hex digits (default: random)',
          })
          .option('templates', {
            type: 'string',
            describe: 'directory with your own network/domain/nic/disk.xml',
          })
          .option('overlay-dir', {
            type: 'string',
            describe:
              'overlay cache (default: $OST_OVERLAY_DIR, else /dev/shm/ost; /dev/shm/ost-<uid> when not root)',
          })
          .option('overlay-fallback', {
            type: 'string',
            describe:
              'used when the cache is too small (default: $OST_OVERLAY_FALLBACK, else /var/tmp/ost[-<uid>])',
          })
          .option('overlay-reserve', {
            type: 'string',
            default: '1G',
            coerce: sizeFlag('overlay-reserve'),
            describe: 'free space wanted per VM',
          })
          .option('images-root', {
            type: 'string',
            describe: 'look the ost-images RPMs up in this installroot',
          })
          .option('images-dir', {
            type: 'string',
            describe: 'take <distro>-<layer>.qcow2 from here (default: $OST_IMAGES_DIR)',
          })
          .option('key', {
            type: 'string',
            describe: 'SSH private key (default: the one the base RPM ships)',
          })
          .option('from', {
            type: 'string',
            describe: 'restore the VMs from this checkpoint (ost checkpoint) instead of booting them',
          })
          .option('isolated', {
            type: 'boolean',
            default: false,
            describe:
              'with --from: a new env beside the one the checkpoint was taken of, its networks (same subnets) in a network namespace of their own; reach it with ost ssh / ost exec',
          })
          .option('checkpoint-cache', {
            type: 'boolean',
            default: false,
            describe:
              'restore from a checkpoint of the same suite, images and deploy scripts when one is stored; else boot, deploy, and checkpoint the env for next time',
          })
          .option('wait', {
            type: 'boolean',
            default: true,
            describe:
              "wait until every VM answers SSH; --no-wait returns once they run (as lagofy's ost_init; no deploy scripts)",
          })
          .option('chained', {
            type: 'boolean',
            default: false,
            describe:
              'start every VM from its chained layers even where a squashed package of its image is installed',
          })
          .option('keep-on-failure', {
            type: 'boolean',
            default: false,
            describe: 'leave the VMs of a failed up running, to debug them (ost down removes them)',
          })
          .option('custom-repo', {
            type: 'string',
            array: true,
            default: [] as string[],
            describe:
              'packages to test: a folder of .deb/.rpm files, or a repository (folder or http(s) URL); built into a cached custom layer of each image (repeatable)',
          })
          .option('custom-install', {
            type: 'string',
            array: true,
            default: [] as string[],
            describe: 'also install this new package from the custom repos (repeatable)',
          })
          .option('disable-custom-repos', {
            type: 'boolean',
            default: false,
            describe: 'leave the custom repos configured but disabled in the VMs (default: enabled)',
          })
          .option('skip-custom-check', {
            type: 'boolean',
            default: false,
            describe: 'start even when a custom repo supplied no package to the images',
          })
          .option('layer-cache', {
            type: 'string',
            describe: 'custom layer cache (default: $OST_LAYER_CACHE, else /var/cache/ost/layers)',
          })
          .options({ ...connect, ...jsonOption, ...timeoutOption, ...checkpointDirOption }),
      async (a) => {
        await upCommand({
          suite: a.suite,
          envFile: a['env-file'],
          env: a.env,
          ostRepo: a['ost-repo'],
          deploy: a.deploy,
          ipv4Only: a['ipv4-only'] === true,
          ipv6Only: a['ipv6-only'] === true,
          id: a.id,
          templates: a.templates,
          overlayDir: a['overlay-dir'],
          overlayFallback: a['overlay-fallback'],
          overlayReserveBytes: a['overlay-reserve'],
          imagesRoot: a['images-root'],
          imagesDir: a['images-dir'],
          key: a.key,
          timeout: a.timeout,
          wait: a.wait,
          chained: a.chained,
          keepOnFailure: a['keep-on-failure'],
          customRepos: a['custom-repo'],
          customInstall: a['custom-install'],
          disableCustomRepos: a['disable-custom-repos'],
          skipCustomCheck: a['skip-custom-check'],
          layerCache: a['layer-cache'],
          from: a.from,
          checkpointCache: a['checkpoint-cache'],
          isolated: a.isolated,
          checkpointDir: a['checkpoint-dir'],
          connect: a.connect,
          json: a.json,
        }).catch(fail);
      },
    )
    .command(
      'down [env]',
      'Remove an environment: domains, networks, overlays, leases and its directory (idempotent)',
      (y) => y.positional('env', envOption.env).options({ ...connect, ...jsonOption }),
      async (a) => {
        await downCommand({ env: a.env, connect: a.connect, json: a.json }).catch(fail);
      },
    )
    .command(
      'status [env]',
      'Show an environment: VMs, addresses, libvirt states',
      (y) => y.positional('env', envOption.env).options({ ...connect, ...jsonOption }),
      async (a) => {
        await statusCommand({ env: a.env, connect: a.connect, json: a.json }).catch(fail);
      },
    )
    .command(
      'checkpoint <env> <name>',
      'Freeze an environment: every VM paused at once, its memory and disks saved under NAME (the env runs on)',
      (y) =>
        y
          .positional('env', { ...envOption.env, demandOption: true })
          .positional('name', { type: 'string', demandOption: true, describe: 'checkpoint name' })
          .option('stop', { type: 'boolean', default: false, describe: 'leave the env paused afterwards' })
          .option('force', { type: 'boolean', default: false, describe: 'replace a checkpoint of that name' })
          .options({ ...connect, ...jsonOption, ...checkpointDirOption }),
      async (a) => {
        await checkpointCommand({
          env: a.env,
          name: a.name as string,
          stop: a.stop,
          force: a.force,
          checkpointDir: a['checkpoint-dir'],
          connect: a.connect,
          json: a.json,
        }).catch(fail);
      },
    )
    .command(
      'revert <env> <name>',
      'Put an environment back to a checkpoint of it, in place: every VM restored, resumed together, clocks set',
      (y) =>
        y
          .positional('env', { ...envOption.env, demandOption: true })
          .positional('name', { type: 'string', demandOption: true, describe: 'checkpoint name' })
          .options({ ...connect, ...jsonOption, ...timeoutOption, ...checkpointDirOption }),
      async (a) => {
        await revertCommand({
          env: a.env,
          name: a.name as string,
          timeout: a.timeout,
          checkpointDir: a['checkpoint-dir'],
          connect: a.connect,
          json: a.json,
        }).catch(fail);
      },
    )
    .command(
      'rm-checkpoint <name>',
      'Remove a checkpoint (refused while an environment runs on it)',
      (y) =>
        y
          .positional('name', { type: 'string', demandOption: true })
          .options({ ...connect, ...jsonOption, ...checkpointDirOption }),
      async (a) => {
        await rmCheckpointCommand({
          name: a.name as string,
          checkpointDir: a['checkpoint-dir'],
          connect: a.connect,
          json: a.json,
        }).catch(fail);
      },
    )
    .command(
      'list',
      'List every environment on this host (up, starting, or a leftover of a dead ost up); --layers: the custom layer cache; --checkpoints: the checkpoints',
      (y) =>
        y
          .options({ ...connect, ...jsonOption, ...layerOptions, ...checkpointDirOption })
          .option('checkpoints', {
            type: 'boolean',
            default: false,
            describe: 'the checkpoints and their sizes',
          }),
      async (a) => {
        if (a.checkpoints) {
          await listCheckpointsCommand({
            checkpointDir: a['checkpoint-dir'],
            connect: a.connect,
            json: a.json,
          }).catch(fail);
          return;
        }
        await listCommand({
          connect: a.connect,
          json: a.json,
          layers: a.layers,
          layerCache: a['layer-cache'],
        }).catch(fail);
      },
    )
    .command(
      'ssh <vm> [command..]',
      'SSH into a VM of an environment (runs the command when given)',
      (y) =>
        y
          .positional('vm', { type: 'string', demandOption: true })
          .positional('command', { type: 'string', array: true, default: [] as string[] })
          .options({ ...envOption, ...connect }),
      async (a) => {
        code = await sshCommand({
          vm: a.vm,
          command: [...(a.command as string[]), ...((a['--'] as string[] | undefined) ?? [])],
          env: a.env,
          connect: a.connect,
        }).catch((err) => {
          fail(err);
          return code;
        });
      },
    )
    .command(
      'exec [env]',
      "Run a command where an environment's VMs are reachable (inside an isolated env's network namespace): ost exec <env> -- <command>",
      (y) => y.positional('env', envOption.env).options({ ...connect }),
      async (a) => {
        code = await execCommand({
          env: a.env,
          command: (a['--'] as string[] | undefined) ?? [],
          connect: a.connect,
        }).catch((err) => {
          fail(err);
          return code;
        });
      },
    )
    .command(
      'console <vm>',
      "Attach to a VM's serial console (virsh console), or print its log with --log",
      (y) =>
        y
          .positional('vm', { type: 'string', demandOption: true })
          .option('log', { type: 'boolean', default: false, describe: 'print the console log instead' })
          .option('lines', {
            type: 'string',
            default: '50',
            coerce: wholeNumber('lines', 1, 1_000_000),
            describe: 'lines of --log',
          })
          .options({ ...envOption, ...connect }),
      async (a) => {
        code = await consoleCommand({
          vm: a.vm,
          env: a.env,
          log: a.log,
          lines: a.lines,
          connect: a.connect,
        }).catch((err) => {
          fail(err);
          return code;
        });
      },
    )
    .command(
      'gc',
      'Remove leftovers of environments whose ost up died before finishing; --layers: custom layers no env uses; --checkpoints: unfinished checkpoints (and with --keep-days, old ones)',
      (y) =>
        y
          .options({ ...connect, ...jsonOption, ...layerOptions, ...checkpointDirOption })
          .option('checkpoints', {
            type: 'boolean',
            default: false,
            describe:
              'unfinished checkpoints; with --keep-days N also those older than N days that no env runs on',
          })
          .option('keep-days', {
            type: 'string',
            coerce: wholeNumber('keep-days', 0, 36_500),
            describe:
              'with --layers: keep layers used in the last N days (default 0); with --checkpoints: see there',
          }),
      async (a) => {
        if (a.checkpoints) {
          await gcCheckpointsCommand({
            keepDays: a['keep-days'],
            checkpointDir: a['checkpoint-dir'],
            connect: a.connect,
            json: a.json,
          }).catch(fail);
          return;
        }
        await gcCommand({
          connect: a.connect,
          json: a.json,
          layers: a.layers,
          layerCache: a['layer-cache'],
          keepDays: a['keep-days'],
        }).catch(fail);
      },
    )
    .demandCommand(1, 'name a command; ost --help lists them')
    .strict()
    .help()
    .version()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((msg, err) => {
      // yargs' own usage errors, and a coerce's (a bad flag value), come as YError: exit 2 with the message
      if (err && err.name !== 'YError') throw err;
      process.stderr.write(`error: ${msg}\nrun ost --help for usage\n`);
      code = 2;
    })
    .parseAsync();
  return code;
}
