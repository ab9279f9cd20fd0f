// `ost up`: environment → images → overlays → leases → networks → domains → SSH-ready → outputs.
// Every resource registers its undo when it is created; a failure or Ctrl-C undoes all of it in reverse.
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { userInfo } from 'node:os';
import * as path from 'node:path';
import { detectAccel } from '../core/accel.js';
import { CleanupStack } from '../core/cleanup.js';
import { errorMessage, InterruptedError, OstError, ToolError, UsageError } from '../core/errors.js';
import { type Reporter, step } from '../core/events.js';
import { run } from '../core/exec.js';
import { faultPoint } from '../core/fault.js';
import { atomicWriteFile } from '../core/fsutil.js';
import { self } from '../core/process.js';
import { findTool, requireTools } from '../core/require-tool.js';
import { ownDir } from '../core/safe-dir.js';
import { create, createOverlay } from '../tools/qemu-img.js';
import { parseNames, virsh } from '../tools/virsh.js';
import {
  checkFromOptions,
  checkImages,
  checkLayout,
  checkpointSubnetMap,
  checkpointSubnets,
  checkpointVm,
  checkReadable,
  checkSuite,
  fromId,
} from './checkpoint/from.js';
import {
  overlaysFromCheckpoint,
  renameFor,
  restoreDomain,
  resumeAndSync,
  setDeployedMarker,
} from './checkpoint/restore.js';
import type { StoredCheckpoint } from './checkpoint/store.js';
import { runDeployScripts } from './deploy.js';
import type { Environment, EnvVm } from './env/model.js';
import { handToQemu, qemuIdentity, shareWithQemuGroup, unreadableBy } from './images/qemu-user.js';
import { imageKey, type ResolvedImage, resolveImages } from './images/resolve.js';
import { SSHD_CONFIG, startSshdProxy, stopSshdProxy } from './ipv6-proxy.js';
import {
  metadataElement,
  OST_NS,
  OST_PREFIX,
  type OstMetadata,
  renderDomain,
  renderNetwork,
} from './libvirt/render.js';
import type { Templates } from './libvirt/templates.js';
import { buildXml } from './libvirt/xml.js';
import { checkMountNamespace, createEnvNetns, netnsDir, removeEnvNetns } from './net/isolated.js';
import { ENV_ID, type IpMode, layoutEnv, NETWORK_NAME, newEnvId } from './net/layout.js';
import { leaseSubnets, releaseLeases } from './net/leases.js';
import { chooseOverlayRoot, claimOverlayDir } from './overlays.js';
import { waitForVms } from './ready/wait.js';
import { exportPackageLists } from './state/ost-files.js';
import {
  type AppliedCustomLayer,
  type EnvRecord,
  leasesDir,
  readRecord,
  type VmRecord,
  writeOutputs,
  writeRecord,
} from './state/record.js';
import { checkDeploymentPath, createWorkdir, giveToUser, removeWorkdir } from './state/workdir.js';
import { destroyObject } from './teardown.js';

export interface UpOptions {
  env: Environment;
  /** Env id: 8 hex digits (default: random, as lagofy's uuidgen | cut -c -8). */
  id?: string;
  /** OST suites: the deployment dir (default `<OST checkout>/deployment`; the CLI passes $OST_DEPLOYMENT). */
  deployment?: string;
  /** Address families: both (default), or IPv4 / IPv6 only (ost.sh run -4 / -6). */
  ipMode?: IpMode;
  /** OST suites: run their deploy scripts too (OST's pytest runs them otherwise). ost-env suites always do. */
  deploy?: boolean;
  /** Hand the deployment dir to this user (sudo's SUDO_UID/SUDO_GID), as ost.sh's would be theirs. */
  owner?: { uid: number; gid: number };
  /** OST suites with IPv6 only: the user the SOCKS helper sshd lets in (who runs OST's pytest). */
  proxyUser?: string;
  uri: string;
  stateRoot: string;
  overlays: { root: string; fallback: string; reservePerVmBytes: number };
  templates: Templates;
  images: { root?: string; imagesDir?: string; key?: string };
  /** Per-VM deadline for SSH-ready. */
  timeoutMs: number;
  /**
   * Wait for every VM to answer SSH (default). `false` returns once the domains run, as lagofy's ost_init
   * does (OST's harness waits for SSH itself); no deploy script can run then.
   */
  wait?: boolean;
  /** On failure, leave what was created (for debugging) instead of undoing it. */
  keepOnFailure?: boolean;
  /** ost up --custom-repo: start the VMs from custom layers on their images (made by the caller's hook). */
  custom?: CustomLayersHook;
  /** ost up --from: restore the VMs from this checkpoint instead of booting them. */
  from?: StoredCheckpoint;
  /**
   * With `from`: a new env of its own beside the one the checkpoint was taken of — new id and names, the
   * same subnets and addresses inside a network namespace of its own (net/isolated.ts).
   */
  isolated?: boolean;
  /**
   * The images as already resolved for this up, by imageKey, and how long that took (`--checkpoint-cache`:
   * the ones its key names); resolved here otherwise.
   */
  resolved?: { images: Map<string, ResolvedImage>; ms: number };
  reporter: Reporter;
  signal?: AbortSignal;
}

/**
 * Custom layers come from the image builder; the CLI passes them in through this hook, so the launcher
 * never imports the builder. `prepare` returns each image's layer, or undefined when it runs as it is.
 */
export interface CustomLayersHook {
  repos: string[];
  install: string[];
  prepare(images: ResolvedImage[]): Promise<Map<string, AppliedCustomLayer | undefined>>;
}

/** Time a phase into `timings` and report it as a top-level step. */
async function phase<T>(
  o: UpOptions,
  timings: Record<string, number>,
  id: string,
  title: string,
  fn: () => Promise<T>,
): Promise<T> {
  const started = Date.now();
  const value = await step(o.reporter, id, title, fn);
  timings[id] = Date.now() - started;
  return value;
}

/** The `ost:env` element for `virsh metadata --set` (virsh adds the namespace and prefix itself). */
function metadataForSet(m: OstMetadata): string {
  const node = metadataElement(m);
  delete node[`@_xmlns:${OST_PREFIX}`];
  return buildXml({ env: node }).trim();
}

async function createDisks(vm: EnvVm, dir: string): Promise<VmRecord['disks']> {
  return Promise.all(
    vm.disks.map(async (d) => {
      const file = path.join(dir, `${vm.name}-${d.name}.${d.format === 'raw' ? 'raw' : 'qcow2'}`);
      if (d.format === 'raw') {
        // sparse: no block is allocated until the guest writes
        const fh = await fs.open(file, 'wx', 0o600);
        await fh.truncate(d.sizeBytes);
        await fh.close();
      } else {
        await create(file, String(d.sizeBytes));
      }
      return { name: d.name, path: file, size: d.size, format: d.format };
    }),
  );
}

/**
 * Run `fn` on every item at once and wait for all of them to settle before failing with the first error:
 * the undo of every create that started is registered and its object exists (or not) before unwinding.
 */
async function settleAll<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  const results = await Promise.allSettled(items.map(fn));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** libvirt refused a network because its subnet is already routed on the host (networkCheckRouteCollision). */
export function isSubnetInUse(err: unknown): boolean {
  const text = err instanceof ToolError ? [err.message, ...err.tail].join('\n') : errorMessage(err);
  return /Network is already in use by interface/.test(text);
}

/** Subnets of other `ost<8 hex>-<N>` networks that are up (OST's own lagofy envs): never leased. */
async function foreignSubnets(uri: string): Promise<string[]> {
  const r = await virsh(uri, ['net-list', '--name'], { allowFailure: true });
  if (r.exitCode !== 0) return [];
  return parseNames(r.stdout).flatMap((n) => {
    const m = NETWORK_NAME.exec(n);
    return m ? [`192.168.${m[2]}`] : [];
  });
}

/** Bring an environment up; resolves once every VM is SSH-ready (or, with wait: false, once they run). */
export async function up(o: UpOptions): Promise<EnvRecord> {
  requireTools(['virsh', 'qemu-img', 'ssh']);
  const started = Date.now();
  const timings: Record<string, number> = {};
  const undo = new CleanupStack();
  const { env } = o;
  // a restored VM keeps its domain name and UUID (libvirt refuses a restore that changes either), so an env
  // from a checkpoint is the env the checkpoint was taken of, under its id: names, networks, addresses
  const isolated = o.isolated === true;
  if (isolated && !o.from)
    throw new UsageError(
      '--isolated starts a second env from a checkpoint: it needs --from',
      'give --from <checkpoint>, or leave out --isolated',
    );
  if (isolated && (process.getuid?.() ?? 0) !== 0)
    throw new OstError('--isolated makes a network namespace: run ost as root (sudo)');
  if (isolated) await checkMountNamespace();
  const id = o.from && !isolated ? fromId(o.from, o.id) : (o.id ?? newEnvId());
  if (!ENV_ID.test(id)) throw new UsageError(`--id ${id}: an env id is 8 lowercase hex digits`);
  const ipMode = o.ipMode ?? 'dual';
  const ostSuite = env.kind === 'ost-json';
  const deployment = ostSuite
    ? path.resolve(o.deployment ?? path.join(env.ostRepo as string, 'deployment'))
    : undefined;
  if (deployment) checkDeploymentPath(deployment);
  // ost.sh run -6: lagofy.sh's SOCKS helper sshd, with OST's own config from the checkout
  const proxyConfig =
    ostSuite && ipMode === 'ipv6' ? path.join(env.ostRepo as string, SSHD_CONFIG) : undefined;
  let proxySshd: string | undefined;
  if (proxyConfig && isolated)
    throw new UsageError(
      "--ipv6-only's SOCKS helper listens on the host's side of the management network, which an --isolated env keeps in its namespace",
      'leave out one of them',
    );
  if (proxyConfig) {
    if (!existsSync(proxyConfig))
      throw new OstError(
        `${proxyConfig} does not exist: --ipv6-only starts OST's SOCKS helper sshd with it, as ost.sh run -6`,
        'run from a complete ovirt-system-tests checkout, or leave out --ipv6-only',
      );
    proxySshd = findTool('sshd');
    if (!proxySshd)
      throw new OstError(
        'sshd is not installed: --ipv6-only starts a SOCKS helper sshd for the guests, as ost.sh run -6',
        'install it with `apt-get install openssh-server` (Debian/Ubuntu) or `dnf install openssh-server` (Fedora/EL)',
      );
  }
  const willDeploy = env.vms.some((vm) => vm.deployScripts.length > 0) && (!ostSuite || o.deploy);
  if (o.wait === false && willDeploy)
    throw new UsageError(
      `--no-wait: suite ${env.suite} has deploy scripts, which run over SSH once the VMs answer`,
      ostSuite ? 'leave out --deploy (OST runs them itself), or --no-wait' : 'leave out --no-wait',
    );
  const from = o.from;
  if (from) {
    checkFromOptions(o);
    checkSuite(env, from);
  }
  const owner = self();
  const qemu = qemuIdentity();
  const domainType = detectAccel() === 'kvm' ? 'kvm' : 'qemu';
  let workdir = deployment ?? '';
  try {
    if (o.resolved) timings.resolve = o.resolved.ms;
    const images = o.resolved
      ? o.resolved.images
      : await phase(o, timings, 'resolve', `resolve ${env.vms.length} images`, () =>
          resolveImages(env.vms, { ...o.images, qemu, signal: o.signal }),
        );
    const imageOf = (vm: EnvVm) => images.get(imageKey(vm)) as ResolvedImage;
    if (from) {
      checkImages(env, imageOf, from);
      checkReadable(from, qemu);
    }
    for (const img of images.values())
      if (img.note) o.reporter({ type: 'warning', subject: img.ref, message: img.note });
    const custom = o.custom;
    // one custom layer per image file (a VM that allows the squashed package and one that does not may
    // both resolve to the chained layers)
    const distinct = [...new Map([...images.values()].map((img) => [img.ref, img])).values()];
    const layers = custom
      ? await phase(o, timings, 'custom', `custom layers for ${distinct.length} images`, () =>
          custom.prepare(distinct),
        )
      : new Map<string, AppliedCustomLayer | undefined>();
    const layerOf = (vm: EnvVm) => layers.get(imageOf(vm).ref);
    for (const l of layers.values()) {
      const why = l && unreadableBy(qemu, l.file);
      if (why)
        throw new OstError(
          `qemu (user ${qemu.name}) cannot read the custom layer ${l.file}: ${why}`,
          'put the layer cache where qemu can reach it (--layer-cache / OST_LAYER_CACHE; default /var/cache/ost/layers)',
        );
    }

    // state (env links, leases) lives in a directory only its owner can change
    await ownDir(o.stateRoot, 0o755, 'the state directory');
    // a checkpoint's guests keep their addresses: its subnets, or a clear word on who holds them (the env
    // it was taken of, still up, holds them all), before anything is claimed
    // (an isolated env takes them inside its namespace, where nothing else is)
    const fromSubnets =
      from && (isolated ? checkpointSubnetMap(from) : await checkpointSubnets(from, leasesDir(o.stateRoot)));
    // the env dir: its existence is the claim on the id (and, for OST suites, on the deployment dir)
    workdir = await createWorkdir(o.stateRoot, id, owner, deployment);
    undo.add(`env dir ${workdir}`, async () => {
      await removeWorkdir(o.stateRoot, id, workdir);
    });

    const overlayRoot = await chooseOverlayRoot(o.overlays, env, o.reporter);
    const overlayDir = path.join(overlayRoot, id);
    const meta: OstMetadata = {
      envId: id,
      suite: env.suite,
      workdir,
      overlayDir,
      ownerPid: owner.pid,
      ownerStart: owner.start,
      state: 'starting',
    };
    const record: EnvRecord = {
      version: 1,
      id,
      suite: env.suite,
      source: env.file,
      kind: env.kind,
      ostRepo: env.ostRepo,
      ipMode,
      distro:
        env.distro ?? env.vms.map((vm) => (vm.image.kind === 'package' ? vm.image.distro : '')).find(Boolean),
      status: 'starting',
      owner,
      created: new Date().toISOString(),
      uri: o.uri,
      workdir,
      overlayDir,
      domainType,
      networks: [],
      vms: [],
      custom: custom && {
        repos: custom.repos,
        install: custom.install,
        layers: [...new Set([...layers.values()].flatMap((l) => (l ? [l.file] : [])))],
      },
      timings,
    };
    await writeRecord(record);

    // keys as shipped by the base RPM are world-readable; ssh wants them private
    const keys = new Map<string, string>();
    for (const img of images.values()) {
      if (keys.has(img.key)) continue;
      const copy = path.join(workdir, 'keys', path.basename(img.key));
      await fs.copyFile(img.key, copy);
      await fs.chmod(copy, 0o600);
      keys.set(img.key, copy);
    }
    // OST suites keep their extra disks in the deployment dir (as lagofy.sh), others next to the overlays
    const disksDir = ostSuite ? path.join(workdir, 'images') : overlayDir;

    const vmTimings = new Map<string, Record<string, number>>(env.vms.map((vm) => [vm.name, {}]));
    const makeOverlays = () =>
      phase(o, timings, 'overlays', `${env.vms.length} overlays in ${overlayDir}`, async () => {
        // the cache root is shared by every env of this user: theirs alone (0711), each env's dir is
        // readable by qemu's group only (0750), each overlay by qemu only
        await ownDir(overlayRoot, 0o711, 'the overlay directory');
        // made with its reservation under the root's lock: two ups never count the same free room
        undo.add(`overlays ${overlayDir}`, () => fs.rm(overlayDir, { recursive: true, force: true }));
        await claimOverlayDir(overlayRoot, overlayDir, o.overlays.reservePerVmBytes * env.vms.length);
        await fs.chmod(overlayDir, 0o750);
        await shareWithQemuGroup(overlayDir, qemu);
        const out = new Map<string, { overlay: string; extra: VmRecord['disks'] }>();
        await Promise.all(
          env.vms.map(async (vm) => {
            const t0 = Date.now();
            const overlay = path.join(overlayDir, `${vm.name}.qcow2`);
            let extra: VmRecord['disks'];
            if (from) {
              // each disk on the checkpoint's frozen file (made and handed to qemu there): the root disk here,
              // extra disks where up keeps them
              extra = vm.disks.map((d) => ({
                name: d.name,
                path: path.join(disksDir, `${vm.name}-${d.name}.qcow2`),
                size: d.size,
                format: 'qcow2',
              }));
              const tops = new Map([['vda', overlay], ...extra.map((d) => [d.name, d.path] as const)]);
              await overlaysFromCheckpoint(from.dir, checkpointVm(from, vm.name), tops, qemu);
            } else {
              await createOverlay(overlay, layerOf(vm)?.file ?? imageOf(vm).path, { signal: o.signal });
              extra = await createDisks(vm, disksDir);
              for (const f of [overlay, ...extra.map((d) => d.path)]) await handToQemu(f, qemu);
            }
            out.set(vm.name, { overlay, extra });
            (vmTimings.get(vm.name) as Record<string, number>).overlay = Date.now() - t0;
          }),
        );
        await faultPoint('up:overlays');
        return out;
      });
    const lease = async () =>
      leaseSubnets(
        leasesDir(o.stateRoot),
        id,
        owner,
        env.networks.map((n) => ({
          network: n.name,
          fixed:
            fromSubnets?.get(n.name) ??
            (n.ipv4.kind === 'fixed' ? n.ipv4.cidr.replace(/\.0\/24$/, '') : undefined),
        })),
        await foreignSubnets(o.uri),
      );
    const makeLeases = () =>
      phase(o, timings, 'lease', 'lease subnets', async () => {
        undo.add(`leases of ${id}`, async () => {
          await releaseLeases(leasesDir(o.stateRoot), id);
        });
        return lease();
      });
    // overlays and leases do not depend on each other: both at once. allSettled, so that every undo one of
    // them registers is in place before a failure of the other unwinds
    const [disksResult, leasesResult] = await Promise.allSettled([
      makeOverlays(),
      isolated && fromSubnets ? Promise.resolve(fromSubnets) : makeLeases(),
    ]);
    if (disksResult.status === 'rejected') throw disksResult.reason;
    if (leasesResult.status === 'rejected') throw leasesResult.reason;
    const disks = disksResult.value;
    await faultPoint('up:leased');
    let layout = layoutEnv(env, id, leasesResult.value, ipMode);
    if (from) checkLayout(layout, from);
    record.networks = layout.networks;

    const createNetworks = () =>
      settleAll(layout.networks, async (net) => {
        const file = path.join(workdir, 'libvirt', `network-${net.name}.xml`);
        await atomicWriteFile(
          file,
          renderNetwork(o.templates, {
            net,
            networks: layout.networks,
            vms: layout.vms,
            meta,
            shortNames: !ostSuite,
            bare: isolated,
          }),
        );
        // undo first: an interrupted net-create may still have created it
        undo.add(`network ${net.libvirtName}`, () => destroyObject(o.uri, 'network', net.libvirtName));
        await virsh(o.uri, ['net-create', file], { signal: o.signal });
      });
    await phase(o, timings, 'networks', `${layout.networks.length} networks`, async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await createNetworks();
        } catch (err) {
          // another user's ost up leased the same /24 from its own state dir a moment before us and its
          // bridge came up first: libvirt refuses ours. Its subnet is on the host now; lease again.
          if (
            !isSubnetInUse(err) ||
            attempt >= 3 ||
            from ||
            env.networks.some((n) => n.ipv4.kind === 'fixed')
          )
            throw err;
          o.reporter({
            type: 'warning',
            message: `${errorMessage(err).split('\n').pop()}: another environment took the subnet first; leasing again`,
          });
          await Promise.all(layout.networks.map((n) => destroyObject(o.uri, 'network', n.libvirtName)));
          await releaseLeases(leasesDir(o.stateRoot), id);
          layout = layoutEnv(env, id, await lease(), ipMode);
          record.networks = layout.networks;
        }
      }
    });
    await faultPoint('up:networks');
    if (isolated)
      await phase(o, timings, 'netns', `network namespace ost-${id}: gateways, DHCP, DNS`, async () => {
        undo.add(`network namespace of ${id}`, async () => {
          await removeEnvNetns(id, netnsDir(o.stateRoot, id));
        });
        record.netns = await createEnvNetns(id, layout, netnsDir(o.stateRoot, id), { shortNames: !ostSuite });
      });

    record.vms = env.vms.map((vm, i) => {
      const l = layout.vms[i] as (typeof layout.vms)[number];
      const img = imageOf(vm);
      const d = disks.get(vm.name) as { overlay: string; extra: VmRecord['disks'] };
      return {
        ...l,
        image: {
          ref: img.ref,
          path: img.path,
          package: img.package,
          chain: layerOf(vm) ? [(layerOf(vm) as AppliedCustomLayer).file, ...img.chain] : img.chain,
          var: vm.imageVar,
          custom: layerOf(vm),
        },
        overlay: d.overlay,
        disks: d.extra,
        memoryMiB: vm.memoryMiB,
        vcpus: vm.vcpus,
        consoleLog: path.join(workdir, 'logs', vm.name),
        key: keys.get(img.key) as string,
        deployScripts: vm.deployScripts.map((s) => s.name),
        timings: vmTimings.get(vm.name) as Record<string, number>,
      };
    });
    // hosts, env.sh, inventory and ssh_config as soon as addresses are known: a kept failed env is reachable
    await writeOutputs(record);
    if (ostSuite) await exportPackageLists(record, path.join(env.ostRepo as string, 'exported-artifacts'));

    if (from) {
      await phase(
        o,
        timings,
        'domains',
        `restore ${record.vms.length} VMs from checkpoint ${from.name}`,
        () =>
          settleAll(record.vms, async (vm) => {
            const t0 = Date.now();
            undo.add(`domain ${vm.libvirtName}`, () => destroyObject(o.uri, 'domain', vm.libvirtName));
            const tops = new Map([['vda', vm.overlay], ...vm.disks.map((d) => [d.name, d.path] as const)]);
            await restoreDomain(
              o.uri,
              from.dir,
              checkpointVm(from, vm.name),
              path.join(workdir, 'libvirt', `domain-${vm.name}.xml`),
              {
                consoleLog: vm.consoleLog,
                meta: { ost: { ...meta, vm: vm.name, roles: vm.roles }, deployScripts: vm.deployScripts },
                rename: renameFor(record, from.record, vm).rename,
              },
              tops,
              o.signal,
            );
            vm.timings.start = Date.now() - t0;
            vm.timings.startedAt = Date.now();
          }),
      );
      await phase(o, timings, 'ready', `resume ${record.vms.length} VMs, set their clocks`, () =>
        resumeAndSync(o.uri, record.vms, o.timeoutMs, o.reporter, o.signal, record.netns),
      );
      await setDeployedMarker(record, from.record.deployed);
      record.checkpoint = { name: from.name, dir: from.dir, key: from.record.key };
      record.deployed = from.record.deployed;
    } else
      await phase(o, timings, 'domains', `define and start ${record.vms.length} VMs (${domainType})`, () =>
        settleAll(record.vms, async (vm) => {
          const t0 = Date.now();
          const file = path.join(workdir, 'libvirt', `domain-${vm.name}.xml`);
          const xml = renderDomain(o.templates, {
            vm,
            networks: layout.networks,
            domainType,
            memoryMiB: vm.memoryMiB,
            vcpus: vm.vcpus,
            consoleLog: vm.consoleLog,
            disks: [
              { path: vm.overlay, format: 'qcow2', dev: 'vda', bus: 'virtio', serial: 'ost-root-disk' },
              ...vm.disks.map((d, i) => ({
                path: d.path,
                format: d.format as 'raw' | 'qcow2',
                dev: d.name,
                bus: 'scsi' as const,
                serial: String(i + 2),
              })),
            ],
            deployScripts: vm.deployScripts,
            qemuUser: qemu,
            meta: { ...meta, vm: vm.name, roles: vm.roles },
          });
          await atomicWriteFile(file, xml);
          undo.add(`domain ${vm.libvirtName}`, () => destroyObject(o.uri, 'domain', vm.libvirtName));
          await virsh(o.uri, ['create', file], { signal: o.signal });
          vm.timings.start = Date.now() - t0;
          // wall-clock moments (epoch ms) a boot breakdown lines the guest's own clocks up with
          vm.timings.startedAt = Date.now();
        }),
      );

    await faultPoint('up:domains');
    if (o.wait !== false && !from)
      await phase(o, timings, 'ready', `wait for SSH on ${record.vms.length} VMs`, () =>
        waitForVms(record.vms, {
          uri: o.uri,
          timeoutMs: o.timeoutMs,
          reporter: o.reporter,
          signal: o.signal,
          qemu,
          domainXml: (vm) => path.join(workdir, 'libvirt', `domain-${vm.name}.xml`),
        }),
      );

    if (proxyConfig) {
      const mgmt = layout.networks.find((n) => n.management);
      const vm0 = record.vms[0];
      if (!mgmt?.ipv6 || !vm0) throw new Error('no IPv6 management network for the IPv6 proxy');
      const gateway = mgmt.ipv6.gateway;
      // the installed key's .pub, on a path sshd's StrictModes accepts (root-owned, nothing writable by others)
      const authorizedKey = `${imageOf(env.vms[0] as EnvVm).key}.pub`;
      await phase(o, timings, 'proxy', `SOCKS helper sshd on [${gateway}]:2222 (ost.sh run -6)`, async () => {
        undo.add('IPv6 proxy sshd', async () => {
          await stopSshdProxy(workdir);
        });
        record.ipv6Proxy = {
          address: gateway,
          pid: await startSshdProxy({
            sshd: proxySshd as string,
            config: proxyConfig,
            workdir,
            hostKey: vm0.key,
            authorizedKey: existsSync(authorizedKey) ? authorizedKey : await publicKeyOf(vm0.key),
            user: o.proxyUser ?? userInfo().username,
            address: gateway,
          }),
        };
      });
    }

    const deploy = env.vms.filter((vm) => vm.deployScripts.length > 0);
    if (willDeploy && !from) {
      await phase(o, timings, 'deploy', `deploy scripts on ${deploy.length} VMs`, () =>
        runDeployScripts(deploy, record.vms, workdir, o.signal),
      );
      record.deployed = true;
    }

    // mark the env finished in libvirt too, so `ost gc` never takes it for a leftover
    await Promise.all(
      record.vms.map((vm) =>
        virsh(o.uri, [
          'metadata',
          vm.libvirtName,
          '--uri',
          OST_NS,
          '--key',
          OST_PREFIX,
          '--set',
          metadataForSet({ ...meta, vm: vm.name, roles: vm.roles, state: 'up' }),
          '--live',
        ]),
      ),
    );
    timings.total = Date.now() - started;
    timings.overhead = timings.total - (timings.ready ?? 0) - (timings.deploy ?? 0);
    record.status = 'up';
    await writeOutputs(record);
    if (deployment && o.owner) await handOver(deployment, o.owner, record);
    return record;
  } catch (err) {
    if (o.keepOnFailure && !o.signal?.aborted && undo.size > 0) {
      // left as it is for debugging (console logs, ost ssh); it counts as a leftover for ost gc
      const left = await readRecord(workdir);
      if (left) await writeRecord({ ...left, status: 'failed' });
      if (deployment && o.owner && left) await handOver(deployment, o.owner, left);
      throw new OstError(
        `${errorMessage(err)}\nenvironment ${id} was left as it is (--keep-on-failure)`,
        `look at ${path.join(workdir, 'logs')}/, then ost down ${id}`,
        err,
      );
    }
    await undo.unwind(o.reporter);
    if (o.signal?.aborted)
      throw new InterruptedError(`ost up ${env.suite}; everything it created was removed`);
    throw err;
  }
}

/** The public half of a private key, next to it (`ssh-keygen -y`), for images that ship no `.pub`. */
async function publicKeyOf(key: string): Promise<string> {
  const pub = `${key}.pub`;
  const r = await run('ssh-keygen', ['-y', '-f', key]);
  await atomicWriteFile(pub, r.stdout);
  return pub;
}

/** The deployment dir to the sudo user; the extra disks stay qemu's (it writes them). */
async function handOver(dir: string, user: { uid: number; gid: number }, r: EnvRecord): Promise<void> {
  await giveToUser(dir, user, new Set(r.vms.flatMap((vm) => vm.disks.map((d) => d.path))));
}
