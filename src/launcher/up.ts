// `ost up`: environment → images → overlays → leases → networks → domains → SSH-ready → outputs.
// Every resource registers its undo when it is created; a failure or Ctrl-C undoes all of it in reverse.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { detectAccel } from '../core/accel.js';
import { CleanupStack } from '../core/cleanup.js';
import { errorMessage, InterruptedError, OstError, ToolError } from '../core/errors.js';
import { type Reporter, step } from '../core/events.js';
import { atomicWriteFile } from '../core/fsutil.js';
import { self } from '../core/process.js';
import { requireTools } from '../core/require-tool.js';
import { create, createOverlay } from '../tools/qemu-img.js';
import { runArgv } from '../tools/run-tool.js';
import { sshArgv } from '../tools/ssh.js';
import { virsh } from '../tools/virsh.js';
import type { Environment, EnvVm } from './env/model.js';
import { qemuIdentity } from './images/qemu-user.js';
import { type ResolvedImage, refText, resolveImages } from './images/resolve.js';
import { metadataElement, OST_NS, type OstMetadata, renderDomain, renderNetwork } from './libvirt/render.js';
import type { Templates } from './libvirt/templates.js';
import { buildXml } from './libvirt/xml.js';
import { layoutEnv } from './net/layout.js';
import { leaseSubnets, releaseLeases } from './net/leases.js';
import { chooseOverlayRoot } from './overlays.js';
import { waitReady } from './ready/wait.js';
import {
  type EnvRecord,
  envDirOf,
  leasesDir,
  readRecord,
  type VmRecord,
  writeOutputs,
  writeRecord,
} from './state/record.js';
import { destroyObject } from './teardown.js';

export interface UpOptions {
  env: Environment;
  /** Env id; default `<suite>-<6 hex>`. */
  id?: string;
  uri: string;
  stateRoot: string;
  overlays: { root: string; fallback: string; reservePerVmBytes: number };
  templates: Templates;
  images: { root?: string; imagesDir?: string; key?: string };
  /** Per-VM deadline for SSH-ready. */
  timeoutMs: number;
  /** On failure, leave what was created (for debugging) instead of undoing it. */
  keepOnFailure?: boolean;
  reporter: Reporter;
  signal?: AbortSignal;
}

const ENV_ID = /^[a-z0-9][a-z0-9-]{0,40}$/;

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
  delete node['@_xmlns:ost'];
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

/** Bring an environment up; resolves once every VM is SSH-ready. */
export async function up(o: UpOptions): Promise<EnvRecord> {
  requireTools(['virsh', 'qemu-img', 'ssh']);
  const started = Date.now();
  const timings: Record<string, number> = {};
  const undo = new CleanupStack();
  const { env } = o;
  const id = o.id ?? `${env.suite}-${randomBytes(3).toString('hex')}`;
  if (!ENV_ID.test(id))
    throw new OstError(`env id "${id}" is not valid`, 'use lowercase letters, digits and dashes');
  const owner = self();
  const qemu = qemuIdentity();
  const domainType = detectAccel() === 'kvm' ? 'kvm' : 'qemu';
  const workdir = envDirOf(o.stateRoot, id);
  try {
    const images = await phase(o, timings, 'resolve', `resolve ${env.vms.length} images`, () =>
      resolveImages(env.vms, { ...o.images, qemu, signal: o.signal }),
    );
    const imageOf = (vm: EnvVm) => images.get(refText(vm.image, vm.squashed)) as ResolvedImage;

    // the env dir: its existence is the claim on the id
    await fs.mkdir(path.dirname(workdir), { recursive: true });
    try {
      await fs.mkdir(workdir, { mode: 0o755 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST')
        throw new OstError(
          `environment ${id} already exists (${workdir})`,
          `ost down ${id}, or pick another --id`,
        );
      throw err;
    }
    undo.add(`env dir ${workdir}`, () => fs.rm(workdir, { recursive: true, force: true }));
    await fs.mkdir(path.join(workdir, 'console'));
    await fs.mkdir(path.join(workdir, 'libvirt'));
    await fs.mkdir(path.join(workdir, 'keys'), { mode: 0o700 });

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
      status: 'starting',
      owner,
      created: new Date().toISOString(),
      uri: o.uri,
      workdir,
      overlayDir,
      domainType,
      networks: [],
      vms: [],
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

    const vmTimings = new Map<string, Record<string, number>>(env.vms.map((vm) => [vm.name, {}]));
    const makeOverlays = () =>
      phase(o, timings, 'overlays', `${env.vms.length} overlays in ${overlayDir}`, async () => {
        await fs.mkdir(overlayRoot, { recursive: true, mode: 0o755 });
        await fs.mkdir(overlayDir, { mode: 0o755 });
        undo.add(`overlays ${overlayDir}`, () => fs.rm(overlayDir, { recursive: true, force: true }));
        const out = new Map<string, { overlay: string; extra: VmRecord['disks'] }>();
        await Promise.all(
          env.vms.map(async (vm) => {
            const t0 = Date.now();
            const overlay = path.join(overlayDir, `${vm.name}.qcow2`);
            await createOverlay(overlay, imageOf(vm).path, { signal: o.signal });
            const extra = await createDisks(vm, overlayDir);
            for (const f of [overlay, ...extra.map((d) => d.path)]) await fs.chown(f, qemu.uid, qemu.gid);
            out.set(vm.name, { overlay, extra });
            (vmTimings.get(vm.name) as Record<string, number>).overlay = Date.now() - t0;
          }),
        );
        return out;
      });
    const makeLeases = () =>
      phase(o, timings, 'lease', 'lease subnets', async () => {
        undo.add(`leases of ${id}`, async () => {
          await releaseLeases(leasesDir(o.stateRoot), id);
        });
        return leaseSubnets(
          leasesDir(o.stateRoot),
          id,
          owner,
          env.networks
            .filter((n) => n.ipv4.kind !== 'none')
            .map((n) => ({
              network: n.name,
              fixed: n.ipv4.kind === 'fixed' ? n.ipv4.cidr.replace(/\.0\/24$/, '') : undefined,
            })),
        );
      });
    // overlays and leases do not depend on each other: both at once. allSettled, so that every undo one of
    // them registers is in place before a failure of the other unwinds
    const [disksResult, leasesResult] = await Promise.allSettled([makeOverlays(), makeLeases()]);
    if (disksResult.status === 'rejected') throw disksResult.reason;
    if (leasesResult.status === 'rejected') throw leasesResult.reason;
    const disks = disksResult.value;
    const leases = leasesResult.value;
    const layout = layoutEnv(env, id, leases);
    record.networks = layout.networks;

    await phase(o, timings, 'networks', `${layout.networks.length} networks`, () =>
      Promise.all(
        layout.networks.map(async (net) => {
          const file = path.join(workdir, 'libvirt', `network-${net.name}.xml`);
          await atomicWriteFile(file, renderNetwork(o.templates, net, layout.vms, meta));
          // undo first: an interrupted net-create may still have created it
          undo.add(`network ${net.libvirtName}`, () => destroyObject(o.uri, 'network', net.libvirtName));
          await virsh(o.uri, ['net-create', file], { signal: o.signal });
        }),
      ),
    );

    record.vms = env.vms.map((vm, i) => {
      const l = layout.vms[i] as (typeof layout.vms)[number];
      const img = imageOf(vm);
      const d = disks.get(vm.name) as { overlay: string; extra: VmRecord['disks'] };
      return {
        ...l,
        image: { ref: img.ref, path: img.path, package: img.package, chain: img.chain },
        overlay: d.overlay,
        disks: d.extra,
        memoryMiB: vm.memoryMiB,
        vcpus: vm.vcpus,
        consoleLog: path.join(workdir, 'console', `${vm.name}.log`),
        key: keys.get(img.key) as string,
        timings: vmTimings.get(vm.name) as Record<string, number>,
      };
    });
    // inventory and ssh_config as soon as addresses are known: a kept failed env can be reached too
    await writeOutputs(record);

    await phase(o, timings, 'domains', `define and start ${record.vms.length} VMs (${domainType})`, () =>
      Promise.all(
        record.vms.map(async (vm) => {
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
              { path: vm.overlay, format: 'qcow2', dev: 'vda', bus: 'virtio' },
              ...vm.disks.map((d) => ({
                path: d.path,
                format: d.format as 'raw' | 'qcow2',
                dev: d.name,
                bus: 'scsi' as const,
              })),
            ],
            qemuUser: qemu,
            meta: { ...meta, vm: vm.name, roles: vm.roles },
          });
          await atomicWriteFile(file, xml);
          undo.add(`domain ${vm.libvirtName}`, () => destroyObject(o.uri, 'domain', vm.libvirtName));
          await virsh(o.uri, ['create', file], { signal: o.signal });
          vm.timings.start = Date.now() - t0;
        }),
      ),
    );

    await phase(o, timings, 'ready', `wait for SSH on ${record.vms.length} VMs`, () =>
      Promise.all(
        record.vms.map(async (vm) => {
          const title = `${vm.name}: boot to SSH`;
          o.reporter({ type: 'step', id: `ready-${vm.name}`, title, status: 'start' });
          const r = await waitReady(
            { vm: vm.name, address: vm.address, key: vm.key, consoleLog: vm.consoleLog },
            o.timeoutMs,
            o.signal,
          );
          vm.systemState = r.systemState;
          vm.timings.bootToSsh = r.readyMs;
          o.reporter({
            type: 'step',
            id: `ready-${vm.name}`,
            title,
            status: 'done',
            durationMs: r.readyMs,
            detail: `${vm.address}, systemd ${r.systemState}, ${r.probes} probes`,
          });
        }),
      ),
    );

    const deploy = env.vms.filter((vm) => vm.deployScripts.length > 0);
    if (deploy.length > 0) {
      await phase(o, timings, 'deploy', `deploy scripts on ${deploy.length} VMs`, () =>
        Promise.all(
          deploy.map(async (vm) => {
            const r = record.vms.find((x) => x.name === vm.name) as VmRecord;
            // each script goes over stdin to bash on the VM: uploaded as it is, never interpolated
            for (const script of vm.deployScripts) {
              const body = await fs.readFile(script, 'utf8');
              const log = path.join(workdir, `deploy-${vm.name}.log`);
              await runArgv(
                sshArgv({ host: r.address, port: 22, user: 'root', privateKey: r.key }, 'bash -s'),
                {
                  input: body,
                  signal: o.signal,
                  logFile: log,
                },
              ).catch((err: unknown) => {
                const tail =
                  err instanceof ToolError
                    ? err.tail
                        .slice(-10)
                        .map((l) => `  | ${l}`)
                        .join('\n')
                    : '';
                throw new OstError(
                  `deploy script ${script} failed on ${vm.name}${tail ? `:\n${tail}` : ''}`,
                  'fix the script and run ost up again (--keep-on-failure leaves the VMs up to look at)',
                  err,
                );
              });
            }
          }),
        ),
      );
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
          'ost',
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
    return record;
  } catch (err) {
    if (o.keepOnFailure && !o.signal?.aborted && undo.size > 0) {
      // left as it is for debugging (console logs, ost ssh); it counts as a leftover for ost gc
      const left = await readRecord(workdir);
      if (left) await writeRecord({ ...left, status: 'failed' });
      throw new OstError(
        `${errorMessage(err)}\nenvironment ${id} was left as it is (--keep-on-failure)`,
        `look at ${path.join(workdir, 'console')}/, then ost down ${id}`,
        err,
      );
    }
    await undo.unwind(o.reporter);
    if (o.signal?.aborted)
      throw new InterruptedError(`ost up ${env.suite}; everything it created was removed`);
    throw err;
  }
}
