// Before anything of an env is made: the request checked (up/request.ts), the host checked for what the
// request needs, the images resolved, the custom layers made or found, the checkpoint checked against
// them, the overlay root chosen — and from all of that, the plan. Nothing here creates a resource of the env.
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import * as path from 'node:path';
import { detectAccel } from '../../core/accel.js';
import { OstError } from '../../core/errors.js';
import { step } from '../../core/events.js';
import { self } from '../../core/process.js';
import { findTool } from '../../core/require-tool.js';
import { ownDir } from '../../core/safe-dir.js';
import { checkImages, checkpointSubnets, checkReadable, checkSuite } from '../checkpoint/from.js';
import { deploymentOwner } from '../env-dir/deployment.js';
import { type AppliedCustomLayer, leasesDir } from '../env-dir/record.js';
import { checkDeploymentPath } from '../env-dir/workdir.js';
import { type Identity, qemuIdentity, unreadableBy } from '../images/qemu-user.js';
import { imageKey, type ResolvedImage, resolveImages } from '../images/resolve.js';
import { SSHD_CONFIG } from '../ipv6-proxy.js';
import { checkMountNamespace } from '../net/isolated.js';
import { type IpMode, newEnvId } from '../net/layout.js';
import { chooseOverlayRoot } from '../overlays.js';
import { deployedIsolation, deployedStart } from './deployed-start.js';
import type { UpOptions } from './options.js';
import { type DeployedStart, deploymentOf, planUp, type UpPlan } from './plan.js';
import { checkUpRequest } from './request.js';

export interface PreparedUp {
  plan: UpPlan;
  qemu: Identity;
  proxy?: { sshd: string; config: string; user: string };
}

/** Time one preparation step into `timings` and report it as a top-level step. */
async function timed<T>(
  o: UpOptions,
  timings: Record<string, number>,
  id: string,
  title: string,
  fn: () => Promise<T>,
) {
  const started = Date.now();
  const value = await step(o.reporter, id, title, fn);
  timings[id] = Date.now() - started;
  return value;
}

/** ost.sh run -6 of an OST suite: lagofy.sh's SOCKS helper sshd, with OST's own config from the checkout. */
function proxyOf(o: UpOptions, ipv6Only: boolean): PreparedUp['proxy'] {
  if (o.env.kind !== 'ost-json' || !ipv6Only) return undefined;
  const config = path.join(o.env.ostRepo as string, SSHD_CONFIG);
  if (!existsSync(config))
    throw new OstError(
      `${config} does not exist: --ipv6-only starts OST's SOCKS helper sshd with it, as ost.sh run -6`,
      'run from a complete ovirt-system-tests checkout, or leave out --ipv6-only',
    );
  const sshd = findTool('sshd');
  if (!sshd)
    throw new OstError(
      'sshd is not installed: --ipv6-only starts a SOCKS helper sshd for the guests, as ost.sh run -6',
      'install it with `apt-get install openssh-server` (Debian/Ubuntu) or `dnf install openssh-server` (Fedora/EL)',
    );
  return { sshd, config, user: o.proxyUser ?? userInfo().username };
}

/** What the host must offer this request, checked before anything is read or made. */
async function checkHost(o: UpOptions, ipv6Only: boolean): Promise<PreparedUp['proxy']> {
  if (o.isolated && (process.getuid?.() ?? 0) !== 0)
    throw new OstError('--isolated makes a network namespace: run ost as root (sudo)');
  if (o.isolated) await checkMountNamespace();
  const deployment = deploymentOf(o.env, o.deployment);
  if (deployment) checkDeploymentPath(deployment);
  const proxy = proxyOf(o, ipv6Only);
  if (o.from) checkSuite(o.env, o.from);
  return proxy;
}

/** Each image file's custom layer (--custom-repo), made or reused by the caller's hook; qemu must read it. */
async function customLayers(
  o: UpOptions,
  timings: Record<string, number>,
  images: ReadonlyMap<string, ResolvedImage>,
  qemu: Identity,
): Promise<Map<string, AppliedCustomLayer | undefined>> {
  const custom = o.custom;
  if (!custom) return new Map();
  // one custom layer per image file (a VM that allows the squashed package and one that does not may
  // both resolve to the chained layers)
  const distinct = [...new Map([...images.values()].map((img) => [img.ref, img])).values()];
  const layers = await timed(o, timings, 'custom', `custom layers for ${distinct.length} images`, () =>
    custom.prepare(distinct),
  );
  for (const l of layers.values()) {
    const why = l && unreadableBy(qemu, l.file);
    if (why)
      throw new OstError(
        `qemu (user ${qemu.name}) cannot read the custom layer ${l.file}: ${why}`,
        'put the layer cache where qemu can reach it (--layer-cache / OST_LAYER_CACHE; default /var/cache/ost/layers)',
      );
  }
  return layers;
}

/** Deployed layers' guests keep their deploy's addresses too: isolated when those /24s are taken. */
async function isolateDeployed(
  o: UpOptions,
  deployed: DeployedStart | undefined,
  ipMode: IpMode,
): Promise<boolean> {
  if (!deployed) return false;
  return deployedIsolation(deployed, {
    leases: leasesDir(o.stateRoot),
    uri: o.uri,
    root: (process.getuid?.() ?? 0) === 0,
    reporter: o.reporter,
    // --ipv6-only's SOCKS helper listens on the host's side of the management network
    ipv6Proxy: ipMode === 'ipv6' && o.env.kind === 'ost-json',
  });
}

/**
 * Check, read and plan an up. `dryRun`: nothing is written (no state dir, no custom layer built: a VM
 * with --custom-repo is planned on its image, and the plan says its layer is made at run time).
 */
export async function prepareUp(
  o: UpOptions,
  timings: Record<string, number>,
  dryRun = false,
): Promise<PreparedUp> {
  const { env, from } = o;
  const checked = checkUpRequest({
    env,
    id: o.id,
    ipMode: o.ipMode,
    deploy: o.deploy,
    wait: o.wait,
    from: from && { name: from.name, envId: from.record.env.id },
    isolated: o.isolated,
    customRepos: o.custom?.repos,
    customInstall: o.custom?.install,
    deployed: o.deployed?.mode,
  });
  const proxy = await checkHost(o, checked.ipMode === 'ipv6');
  const qemu = qemuIdentity();
  if (o.resolved) timings.resolve = o.resolved.ms;
  const images =
    o.resolved?.images ??
    (await timed(o, timings, 'resolve', `resolve ${env.vms.length} images`, () =>
      resolveImages(env.vms, { ...o.images, qemu, signal: o.signal }),
    ));
  if (from) {
    checkImages(env, (vm) => images.get(imageKey(vm)) as ResolvedImage, from);
    checkReadable(from, qemu);
  }
  for (const img of images.values())
    if (img.note) o.reporter({ type: 'warning', subject: img.ref, message: img.note });
  const custom = dryRun ? new Map() : await customLayers(o, timings, images, qemu);
  // --deployed: the deployed layers, checked against what the suite has now (none that match: auto deploys)
  const deployed = o.deployed && (await deployedStart(env, images, qemu, o.deployed, o.reporter));
  // state (env links, leases) lives in a directory only its owner can change
  if (!dryRun) await ownDir(o.stateRoot, 0o755, 'the state directory');
  // a checkpoint's guests keep their addresses: its subnets, or a clear word on who holds them (the env
  // it was taken of, still up, holds them all), before anything is claimed; an isolated env takes them
  // inside its namespace, where nothing else is
  if (from && !o.isolated) await checkpointSubnets(from, leasesDir(o.stateRoot));
  const isolated = o.isolated === true || (await isolateDeployed(o, deployed, checked.ipMode));
  const overlayRoot = await chooseOverlayRoot(o.overlays, env, o.reporter);
  const me = self();
  const deployment = deploymentOf(env, o.deployment);
  const plan = planUp({
    env,
    // a restored VM keeps its domain name and UUID, and the names carry the id: an env from a checkpoint is
    // the env the checkpoint was taken of, under its id (an isolated one is a new env)
    id: from && !o.isolated ? from.record.env.id : (o.id ?? newEnvId()),
    ipMode: checked.ipMode,
    deploy: checked.deploy && !deployed,
    deployed: deployed || undefined,
    wait: o.wait !== false,
    from,
    isolated,
    uri: o.uri,
    stateRoot: o.stateRoot,
    deployment,
    overlayRoot,
    reservePerVmBytes: o.overlays.reservePerVmBytes,
    images,
    custom,
    domainType: detectAccel(o.accel) === 'kvm' ? 'kvm' : 'qemu',
    self: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, pid: me },
    qemu,
    deploymentOwner: deployment ? await deploymentOwner(deployment, o.owner) : undefined,
    invoker: o.owner?.uid,
    customRequest: o.custom && { repos: o.custom.repos, install: o.custom.install },
  });
  return { plan, qemu, proxy };
}
