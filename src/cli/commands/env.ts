// `ost up`: thin handler over src/launcher/up (the request's rules, the plan, its phases).

import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import * as path from 'node:path';
import { BUILDER_VERSION } from '../../builder/version.js';
import type { Accel } from '../../core/accel.js';
import { onInterrupt } from '../../core/cleanup.js';
import type { OstConfig, SudoSettings } from '../../core/config.js';
import { OstError } from '../../core/errors.js';
import { readCheckpoint } from '../../launcher/checkpoint/store.js';
import { loadEnvironment } from '../../launcher/env/load.js';
import type { Environment } from '../../launcher/env/model.js';
import { loadOstJson } from '../../launcher/env/ost-json.js';
import { type EnvRecord, stateRoot } from '../../launcher/env-dir/record.js';
import { Templates } from '../../launcher/libvirt/templates.js';
import type { IpMode } from '../../launcher/net/layout.js';
import { type CacheOutcome, upWithCheckpointCache } from '../../launcher/up/checkpoint-cache.js';
import { planOnly } from '../../launcher/up/dry-run.js';
import type { UpPlan } from '../../launcher/up/plan.js';
import { checkUpRequest } from '../../launcher/up/request.js';
import { type UpOptions, up } from '../../launcher/up/run.js';
import { libvirtUri } from '../../tools/virsh.js';
import { cliReporter } from '../reporter.js';
import { type EnvCommon, overlayRoots, rootOf } from './common.js';

export type { EnvCommon } from './common.js';

import { type CustomArgs, customHook } from './layers.js';

const BUNDLED_ENV_FILE = path.resolve(
  path.dirname(new URL(import.meta.url).pathname),
  '../../../ost-env.yaml',
);

export interface UpArgs extends EnvCommon, CustomArgs {
  suite?: string;
  envFile?: string;
  env?: string;
  ostRepo?: string;
  deploy: boolean;
  ipv4Only: boolean;
  ipv6Only: boolean;
  id?: string;
  templates?: string;
  overlayDir?: string;
  overlayFallback?: string;
  /** Free space wanted per VM, in bytes (--overlay-reserve, parsed by the CLI). */
  overlayReserveBytes: number;
  imagesRoot?: string;
  imagesDir?: string;
  key?: string;
  timeout: number;
  wait: boolean;
  /** --chained: no VM starts from a squashed package. */
  chained: boolean;
  keepOnFailure: boolean;
  /** --from: a checkpoint name. */
  from?: string;
  /** --checkpoint-cache: restore from a checkpoint of the same content, or take one for next time. */
  checkpointCache?: boolean;
  /** --isolated: with --from, a second env of its own, its networks in a namespace of their own. */
  isolated?: boolean;
  /** --dry-run: print the plan (the commands and files) and make nothing. */
  dryRun?: boolean;
  /** --deployed / --deployed=auto: start from the suite's deployed images. */
  deployed?: 'require' | 'auto';
  checkpointDir?: string;
}

function loadEnv(a: UpArgs, config: OstConfig): Environment {
  const env = loadSuite(a, config.imageVars);
  // --deployed: the deployed layers sit on the chained layers, never on a squashed package
  return a.chained || a.deployed ? { ...env, vms: env.vms.map((vm) => ({ ...vm, squashed: false })) } : env;
}

/** The suite: an ost.json (`imageVars`: OST_IMAGES_* name its images) or a suite of an ost-env.yaml. */
function loadSuite(a: UpArgs, imageVars: OstConfig['imageVars']): Environment {
  if (a.env) return loadOstJson(a.env, imageVars);
  if (!a.suite) throw new OstError('name a suite (ost up demo-suite), or pass --env path/to/ost.json');
  // an OST checkout: --ost-repo, or the current folder when it has <suite>/ost.json (as ./ost.sh run)
  const repo = a.ostRepo ?? (!a.envFile && existsSync(path.join(a.suite, 'ost.json')) ? '.' : undefined);
  if (repo) return loadOstJson(path.join(path.resolve(repo), a.suite, 'ost.json'), imageVars);
  const file = a.envFile ?? (existsSync('ost-env.yaml') ? 'ost-env.yaml' : BUNDLED_ENV_FILE);
  return loadEnvironment(file, a.suite);
}

const secs = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)}s`);
const ms = (v: number | undefined) => (v === undefined ? '-' : `${v}ms`.padStart(6));

/** `custom: name version, ... (layer KEY, built)` for a VM on a custom layer. */
export function customLine(vm: EnvRecord['vms'][number]): string | undefined {
  const c = vm.image.custom;
  if (!c) return undefined;
  const pkgs = c.packages.map((p) => `${p.name} ${p.version}`).join(', ') || 'none';
  return `  ${''.padEnd(10)} custom packages: ${pkgs} (layer ${c.key.slice(0, 12)}, ${c.built ? 'built now' : 'from the cache'})`;
}

/** The human summary of an env that is up. */
export function upSummary(r: EnvRecord): string {
  const rows = r.vms.flatMap((vm) => {
    const img = vm.image.package
      ? `${vm.image.package.name}-${vm.image.package.version}-${vm.image.package.release}`
      : vm.image.path;
    const t = vm.timings;
    const row = `  ${vm.name.padEnd(10)} ${vm.address.padEnd(16)} ${(vm.systemState ?? '').padEnd(9)} overlay ${ms(t.overlay)} start ${ms(t.start)} boot→SSH ${secs(t.bootToSsh).padStart(6)}  ${img}`;
    const c = customLine(vm);
    return c ? [row, c] : [row];
  });
  const t = r.timings;
  return [
    `environment ${r.id} (suite ${r.suite}) is up:`,
    ...rows,
    `time: resolve ${secs(t.resolve)},${t.custom === undefined ? '' : ` custom layers ${secs(t.custom)},`} overlays ${secs(t.overlays)}, lease ${secs(t.lease)}, networks ${secs(t.networks)}, ` +
      `define+start ${secs(t.domains)}, boot to SSH ${t.ready === undefined ? 'not waited for (--no-wait)' : secs(t.ready)}${t.deploy ? `, deploy ${secs(t.deploy)}` : ''}; ` +
      `total ${secs(t.total)} (ost's own overhead ${secs(t.overhead)})`,
    ...(r.deployedFrom
      ? [
          `deployed:   started from ${r.deployedFrom.manifest} (key ${r.deployedFrom.key.slice(0, 12)}); no deploy script ran`,
        ]
      : []),
    `inventory:  ${path.join(r.workdir, 'inventory')}`,
    `ssh_config: ${path.join(r.workdir, 'ssh_config')}   (ost ssh ${r.vms[0]?.name ?? '<vm>'}, or ssh -F …)`,
    ...(r.netns
      ? [
          `isolated:   its networks are in network namespace ${r.netns}: ost ssh <vm> --env ${r.id}, or ost exec ${r.id} -- <command>`,
        ]
      : []),
    `stop it:    ost down ${r.id}`,
  ].join('\n');
}

/** What --checkpoint-cache did, in one line. */
function cacheSummary(c: CacheOutcome): string {
  if (c.hit) return `checkpoint cache: restored from ${c.name}`;
  if (!c.name) return `checkpoint cache: booted; ${c.note ?? 'no checkpoint taken'}`;
  if (c.note) return `checkpoint cache: ${c.note}`;
  const replaced = c.replaced.length > 0 ? `; replaced ${c.replaced.join(', ')}` : '';
  return `checkpoint cache: booted and checkpointed as ${c.name} in ${secs(c.checkpointMs)} for next time${replaced}`;
}

/** Overlay folders are per user: root's `/dev/shm/ost`, others' `/dev/shm/ost-<uid>`. */

/** The user who ran ost through sudo: an OST deployment dir is handed to them, as ost.sh's is theirs. */
function sudoUser(sudo: SudoSettings): { uid: number; gid: number } | undefined {
  const { uid, gid } = sudo;
  if (process.getuid?.() !== 0 || uid === undefined || gid === undefined || uid === 0) return undefined;
  return { uid, gid };
}

/** Where ost up works: the libvirt connection, the state root, the accelerator (OST_ACCEL, else detected). */
function hostOf(a: UpArgs, config: OstConfig): { uri: string; stateRoot: string; accel?: Accel } {
  return { uri: libvirtUri(a.connect, config.libvirtUri), stateRoot: stateRoot(config), accel: config.accel };
}

/** The options of an up, from its flags and the config (a flag wins over its variable). */
async function upOptions(
  a: UpArgs,
  config: OstConfig,
  env: Environment,
  ipMode: IpMode,
  ui: ReturnType<typeof cliReporter>,
  signal: AbortSignal,
): Promise<UpOptions> {
  return {
    env,
    id: a.id,
    deployment: config.deployment,
    ipMode,
    deploy: a.deploy,
    owner: sudoUser(config.sudo),
    // who runs OST's pytest: the sudo user, else whoever runs ost
    proxyUser: (sudoUser(config.sudo) && config.sudo.user) || userInfo().username,
    ...hostOf(a, config),
    overlays: {
      root: a.overlayDir ?? overlayRoots(config).root,
      fallback: a.overlayFallback ?? overlayRoots(config).fallback,
      reservePerVmBytes: a.overlayReserveBytes,
    },
    templates: new Templates(a.templates ?? config.templatesDir),
    images: { root: a.imagesRoot, imagesDir: a.imagesDir ?? config.imagesDir, key: a.key },
    timeoutMs: a.timeout * 1000,
    wait: a.wait,
    keepOnFailure: a.keepOnFailure,
    custom: customHook(a, config, ui.reporter, signal),
    from: a.from ? await readCheckpoint(rootOf(a, config), a.from) : undefined,
    isolated: a.isolated,
    deployed: a.deployed && { mode: a.deployed, ost: BUILDER_VERSION },
    reporter: ui.reporter,
    signal,
  };
}

export async function upCommand(a: UpArgs, config: OstConfig): Promise<void> {
  const env = loadEnv(a, config);
  // every flag rule at once, before anything is read or made (the checkpoint's own id is checked once read)
  const { ipMode } = checkUpRequest({
    env,
    id: a.id,
    ipv4Only: a.ipv4Only,
    ipv6Only: a.ipv6Only,
    deploy: a.deploy,
    wait: a.wait,
    from: a.from ? { name: a.from } : undefined,
    isolated: a.isolated,
    checkpointCache: a.checkpointCache,
    customRepos: a.customRepos,
    customInstall: a.customInstall,
    dryRun: a.dryRun,
    deployed: a.deployed,
  });
  const ui = cliReporter({ quiet: a.json || a.dryRun });
  const abort = new AbortController();
  const off = onInterrupt(abort, () => process.exit(130));
  const print = (json: unknown, text: string) => {
    ui.stop();
    process.stdout.write(a.json ? `${JSON.stringify(json, null, 2)}\n` : `${text}\n`);
  };
  try {
    const options = await upOptions(a, config, env, ipMode, ui, abort.signal);
    if (a.dryRun) {
      const { plan, text } = await planOnly(options);
      return print(planJson(plan), text);
    }
    if (!a.checkpointCache) {
      const record = await up(options);
      return print(record, upSummary(record));
    }
    const { record, cache } = await upWithCheckpointCache({ ...options, checkpointRoot: rootOf(a, config) });
    print({ ...record, checkpointCache: cache }, `${upSummary(record)}\n${cacheSummary(cache)}`);
  } finally {
    ui.stop();
    off();
  }
}

/** The plan as JSON: the checkpoint by name, each VM without its suite entry (already in the plan's env). */
function planJson(plan: UpPlan): unknown {
  return {
    ...plan,
    from: plan.from && { name: plan.from.name, dir: plan.from.dir },
    vms: plan.vms.map(({ vm: _vm, ...rest }) => rest),
  };
}

/**
 * The up of a suite that `ost build-images --deployed` deploys: as `ost up <suite> --env-file F` (or an
 * OST checkout's, --ost-repo), with --deploy, waiting for SSH, on the set's own images.
 */
export async function deployUpOptions(
  s: { suite: string; envFile?: string; ostRepo?: string; timeout: number; imagesDir: string },
  config: OstConfig,
  ui: ReturnType<typeof cliReporter>,
  signal: AbortSignal,
): Promise<UpOptions> {
  const a: UpArgs = {
    suite: s.suite,
    envFile: s.envFile,
    ostRepo: s.ostRepo,
    deploy: true,
    ipv4Only: false,
    ipv6Only: false,
    overlayReserveBytes: 2 ** 30,
    imagesDir: s.imagesDir,
    timeout: s.timeout,
    wait: true,
    chained: true,
    keepOnFailure: false,
    customRepos: [],
    customInstall: [],
    disableCustomRepos: false,
    skipCustomCheck: false,
  };
  const env = loadEnv(a, config);
  const { ipMode } = checkUpRequest({ env, deploy: true, wait: true });
  return upOptions(a, config, env, ipMode, ui, signal);
}
