// Restoring VMs from a checkpoint: each disk on a fresh overlay over the checkpoint's frozen file, the
// domain restored paused from its memory file with the saved XML rewritten for where it now runs, all
// resumed together, then each guest's clock set over one SSH login (which is its readiness check too).
// `ost revert` does this in place for the env the checkpoint was taken of (or one laid out the same).
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { InternalError, OstError } from '../../core/errors.js';
import { type Reporter, step } from '../../core/events.js';
import { run, withoutTerminalSignals } from '../../core/exec.js';
import { faultPoint } from '../../core/fault.js';
import { atomicWriteFile } from '../../core/fsutil.js';
import { createOverlay } from '../../tools/qemu-img.js';
import { virsh } from '../../tools/virsh.js';
import { republishKeys, setDeployedMarker } from '../env-dir/deployment.js';
import { writeOutputs } from '../env-dir/outputs.js';
import type { EnvRecord, VmRecord } from '../env-dir/record.js';
import { lockEnv } from '../env-lock.js';
import { handToQemu, type Identity, qemuIdentity } from '../images/qemu-user.js';
import { requireEnv } from '../select.js';
import { destroyObject } from '../teardown.js';
import { syncClock } from './clock.js';
import { ownChainFiles, removeFiles } from './disks.js';
import { domainXmlForRestore, type RestoreEdits } from './domain-xml.js';
import { copySaveImage } from './save-image.js';
import { keyMismatch, type StagedKeys, stageCheckpointKeys } from './ssh-keys.js';
import { type CheckpointRecord, type CheckpointVm, readCheckpoint, type StoredCheckpoint } from './store.js';
import { nextTop, vmDisks } from './take.js';

/** Make the fresh tops of a VM's disks over the checkpoint's files: guest device → new top. */
export async function overlaysFromCheckpoint(
  ckDir: string,
  cvm: CheckpointVm,
  tops: ReadonlyMap<string, string>,
  qemu: Identity,
): Promise<void> {
  for (const d of cvm.disks) {
    const top = tops.get(d.dev);
    if (!top) throw new InternalError(`no new top for ${cvm.name} ${d.dev}`);
    await createOverlay(top, path.join(ckDir, d.file), {}, d.format);
    await handToQemu(top, qemu);
  }
}

/**
 * Restore one VM paused: the saved XML with `edits` (its disks on `tops`) written to `xmlFile` first (a
 * file of root's or the caller's own, never in a dir another user owns: it is written while other VMs
 * restore). Returns that XML.
 */
export async function restoreDomain(
  uri: string,
  ckDir: string,
  cvm: CheckpointVm,
  xmlFile: string,
  edits: Omit<RestoreEdits, 'disks'>,
  tops: ReadonlyMap<string, string>,
  signal?: AbortSignal,
): Promise<string> {
  const saved = await fs.readFile(path.join(ckDir, cvm.xml), 'utf8');
  const disks = new Map([...tops].map(([dev, p]) => [dev, { path: p, format: 'qcow2' as const }]));
  const xml = domainXmlForRestore(saved, { ...edits, disks });
  await atomicWriteFile(xmlFile, xml);
  const memory = path.join(ckDir, cvm.memory);
  if (!edits.rename) {
    await virsh(uri, ['restore', memory, '--xml', xmlFile, '--paused'], { signal, timeoutMs: 600_000 });
    return xml;
  }
  // another name and UUID: only from a copy of the save image that carries them (beside the VM's root
  // disk top, a dir of root's), removed once qemu has read it
  const copy = path.join(path.dirname(tops.get('vda') as string), `.restore-${cvm.name}.mem`);
  await fs.rm(copy, { force: true });
  try {
    await copySaveImage(memory, copy, xml);
    await virsh(uri, ['restore', copy, '--paused'], { signal, timeoutMs: 600_000 });
  } finally {
    await fs.rm(copy, { force: true });
  }
  return xml;
}

/** Resume every VM at once, then set each guest's clock over SSH (its readiness check). ms per VM. */
export async function resumeAndSync(
  uri: string,
  vms: readonly VmRecord[],
  timeoutMs: number,
  reporter: Reporter,
  signal?: AbortSignal,
  netns?: string,
): Promise<void> {
  // a restored guest remembers the gateway's MAC of when the checkpoint was taken, which an isolated env's
  // gateway does not have: with the namespace's neighbour table empty, the first login starts with an ARP
  // request from the gateway, which sets the guest right (else its replies go nowhere until its entry
  // goes stale, ~30 s)
  if (netns) await run('ip', ['-n', netns, 'neigh', 'flush', 'all'], { signal });
  await Promise.all(vms.map((vm) => virsh(uri, ['resume', vm.libvirtName], { signal })));
  const resumedAt = Date.now();
  await Promise.all(
    vms.map(async (vm) => {
      const r = await syncClock(
        { host: vm.address, port: 22, user: 'root', privateKey: vm.key, netns },
        timeoutMs,
        signal,
      );
      vm.timings.readyAt = Date.now();
      vm.timings.bootToSsh = vm.timings.readyAt - resumedAt;
      vm.systemState = 'restored';
      reporter({
        type: 'step',
        id: `ready-${vm.name}`,
        title: `${vm.name}: clock set, SSH answers`,
        status: 'done',
        durationMs: vm.timings.bootToSsh,
        detail: `${vm.address}, clock ${r.offsetMs >= 0 ? '+' : ''}${r.offsetMs} ms off the host's after setting`,
      });
    }),
  );
}

/**
 * The names a VM of `r` is restored under when `r` is not the env the checkpoint was taken of (an isolated
 * copy, `ost up --from … --isolated`): its own domain name, a new UUID, its NICs on `r`'s networks, and
 * `r`'s metadata. None when the names are the checkpoint's (the env itself, or `--from` after `down`).
 */
export function renameFor(
  r: EnvRecord,
  ck: CheckpointRecord,
  vm: VmRecord,
): Pick<RestoreEdits, 'rename' | 'meta'> {
  const was = ck.env.vms.find((v) => v.name === vm.name);
  if (!was || was.libvirtName === vm.libvirtName) return {};
  const networks = new Map<string, string>();
  for (const n of ck.env.networks) {
    const now = r.networks.find((x) => x.name === n.name);
    if (now) networks.set(n.libvirtName, now.libvirtName);
  }
  return {
    rename: { name: vm.libvirtName, uuid: randomUUID(), networks },
    meta: {
      ost: {
        envId: r.id,
        suite: r.suite,
        workdir: r.workdir,
        overlayDir: r.overlayDir,
        ownerPid: r.owner.pid,
        ownerStart: r.owner.start,
        state: r.status === 'up' ? 'up' : 'starting',
        vm: vm.name,
        roles: vm.roles,
      },
      deployScripts: vm.deployScripts,
    },
  };
}

/** Why `ck` cannot be restored into `r` in place (another layout), or undefined. */
export function layoutMismatch(r: EnvRecord, ck: CheckpointRecord): string | undefined {
  if (r.suite !== ck.env.suite) return `it was taken of suite ${ck.env.suite}, the env runs ${r.suite}`;
  const names = (x: EnvRecord) => x.vms.map((vm) => vm.name).join(',');
  if (names(r) !== names(ck.env)) return `its VMs are ${names(ck.env)}, the env's ${names(r)}`;
  for (const vm of r.vms) {
    const was = ck.env.vms.find((v) => v.name === vm.name) as VmRecord;
    const macs = (v: VmRecord) => v.nics.map((n) => `${n.mac}`).join(',');
    if (macs(vm) !== macs(was))
      return `${vm.name}'s NICs had ${macs(was)} (subnets ${ck.env.networks.map((n) => n.subnet).join(', ')}), now ${macs(vm)}`;
  }
  return undefined;
}

export interface RevertOptions {
  uri: string;
  stateRoot: string;
  root: string;
  env?: string;
  name: string;
  timeoutMs: number;
  reporter: Reporter;
  signal?: AbortSignal;
}

/** The env (found again by id: under its lock) and the checkpoint it can be reverted to, or why not. */
async function revertable(o: RevertOptions, id: string) {
  const found = await requireEnv(o.uri, o.stateRoot, id);
  const rec = found.record;
  if (!rec) throw new OstError(`environment ${found.id} has no env.json`, `ost down ${found.id}`);
  const ck = await readCheckpoint(o.root, o.name);
  const why = layoutMismatch(rec, ck.record) ?? keyMismatch(rec, ck);
  if (why)
    throw new OstError(
      `checkpoint ${o.name} does not fit environment ${rec.id}: ${why}`,
      `start a new env from it instead: ost up ${ck.record.env.suite} --from ${o.name}`,
    );
  return { rec, ck };
}

/**
 * `ost revert <env> <name>`: the env back to the checkpoint, in place, under the env's lock. Ctrl-C before
 * the VMs are stopped changes nothing; after, the revert runs to its end (the stopped VMs come back only
 * from the checkpoint), saying so, and a second Ctrl-C exits at once (then: ost revert again, or ost down).
 */
export async function revert(o: RevertOptions): Promise<EnvRecord> {
  const started = Date.now();
  const { id } = await requireEnv(o.uri, o.stateRoot, o.env);
  // the env's lock first, then the env as it is now: what a down or checkpoint did before is seen
  const lock = await lockEnv(o.stateRoot, id, `revert to ${o.name}`);
  const finishing = () =>
    o.reporter({
      type: 'warning',
      message: `interrupted: the VMs of ${id} are stopped, so the revert to ${o.name} finishes first (a second Ctrl-C stops at once; then ost revert or ost down ${id})`,
    });
  let keys: StagedKeys | undefined;
  try {
    const { rec, ck } = await revertable(o, id);
    // what can fail about the keys fails now, with the env as it was
    keys = await stageCheckpointKeys(rec, ck);
    await faultPoint('revert:locked', o.signal);
    o.signal?.throwIfAborted();
    o.signal?.addEventListener('abort', finishing, { once: true });
    const staged = keys;
    keys = undefined;
    // the terminal's Ctrl-C goes to the whole foreground group: the commands of the revert are out of it
    return await withoutTerminalSignals(() => revertInPlace(o, rec, ck, staged, started));
  } finally {
    await keys?.discard();
    o.signal?.removeEventListener('abort', finishing);
    await lock.release();
  }
}

/** The revert proper, from stopping the VMs on: not interruptible (no signal reaches its commands). */
async function revertInPlace(
  o: RevertOptions,
  rec: EnvRecord,
  ck: StoredCheckpoint,
  keys: StagedKeys,
  started: number,
): Promise<EnvRecord> {
  const qemu = qemuIdentity();
  const dirs = [
    rec.overlayDir,
    ...new Set(rec.vms.flatMap((vm) => vm.disks.map((d) => path.dirname(d.path)))),
  ];
  const old = (
    await Promise.all(rec.vms.flatMap((vm) => vmDisks(vm).map((d) => ownChainFiles(d.top, dirs))))
  ).flat();
  const tops = new Map(
    rec.vms.map((vm) => [vm.name, new Map(vmDisks(vm).map((d) => [d.dev, nextTop(d.top)]))]),
  );
  await step(o.reporter, 'stop', `stop ${rec.vms.length} VMs`, () =>
    Promise.all(rec.vms.map((vm) => destroyObject(o.uri, 'domain', vm.libvirtName))),
  );
  await faultPoint('revert:stopped');
  // the restore XMLs go next to the overlays (ost's own dir) while the VMs restore side by side; the
  // env dir (maybe the sudo user's deployment dir) gets its copies at the end, as its owner
  const xmls = new Map<string, string>();
  await step(o.reporter, 'restore', `restore ${rec.vms.length} VMs from ${o.name}`, () =>
    Promise.all(
      rec.vms.map(async (vm) => {
        const cvm = ck.record.vms.find((v) => v.name === vm.name) as CheckpointVm;
        const t = tops.get(vm.name) as Map<string, string>;
        await overlaysFromCheckpoint(ck.dir, cvm, t, qemu);
        const xmlFile = path.join(path.dirname(t.get('vda') as string), `.restore-${vm.name}.xml`);
        try {
          xmls.set(
            vm.name,
            await restoreDomain(
              o.uri,
              ck.dir,
              cvm,
              xmlFile,
              { consoleLog: vm.consoleLog, ...renameFor(rec, ck.record, vm) },
              t,
            ),
          );
        } finally {
          await fs.rm(xmlFile, { force: true });
        }
        vm.overlay = t.get('vda') as string;
        vm.disks = vm.disks.map((d) => ({ ...d, path: t.get(d.name) ?? d.path }));
      }),
    ),
  );
  // the guests authorize the checkpoint's keys now: the env logs in with them (and OST's harness too)
  await keys.install();
  // the harness's copies in the deployment dir, as its owner: a dir they removed meanwhile costs a warning
  await republishKeys(rec).catch((err: unknown) =>
    o.reporter({
      type: 'warning',
      message: `the deployment dir's copies of the env's keys were not renewed: ${(err as Error).message}`,
    }),
  );
  await resumeAndSync(o.uri, rec.vms, o.timeoutMs, o.reporter, undefined, rec.netns);
  // the old chains: nothing runs on them any more
  await removeFiles(old.filter((f) => ![...tops.values()].some((t) => [...t.values()].includes(f))));
  rec.checkpoint = { name: o.name, dir: ck.dir, key: ck.record.key };
  rec.deployed = ck.record.deployed;
  rec.status = 'up';
  rec.timings.revert = Date.now() - started;
  for (const [vm, xml] of xmls)
    await atomicWriteFile(path.join(rec.workdir, 'libvirt', `domain-${vm}.xml`), xml);
  await setDeployedMarker(rec, ck.record.deployed);
  await writeOutputs(rec);
  return rec;
}
