// `ost checkpoint <env> <name>`: every VM of the env paused at once, then per VM an external snapshot
// (libvirt's `snapshot-create-as --memspec`, no snapshot metadata): its memory and device state into the
// checkpoint, its disks switched to fresh overlays on top of what they were. The frozen tops are copied into
// the checkpoint while the env runs on (or stays paused, `--stop`): the env never depends on the checkpoint,
// and the checkpoint only on the installed images. The env's SSH keys go with it (ssh-keys.ts).
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { CleanupStack } from '../../core/cleanup.js';
import { OstError } from '../../core/errors.js';
import { type Reporter, step } from '../../core/events.js';
import type { ExecOptions, ExecResult } from '../../core/exec.js';
import { faultPoint } from '../../core/fault.js';
import { createOverlay } from '../../tools/qemu-img.js';
import { virsh } from '../../tools/virsh.js';
import type { Environment } from '../env/model.js';
import { isUp } from '../env-dir/discover.js';
import { writeOutputs } from '../env-dir/outputs.js';
import { type EnvRecord, overlayBaseOf, type VmRecord } from '../env-dir/record.js';
import { lockEnv } from '../env-lock.js';
import { handToQemu, type Identity, qemuIdentity } from '../images/qemu-user.js';
import { requireEnv } from '../select.js';
import { freezeDisk } from './disks.js';
import { contentKey, type KeyImage } from './key.js';
import { saveKeys } from './ssh-keys.js';
import { type CheckpointVm, dirBytes, type StoredCheckpoint, startCheckpoint } from './store.js';

export interface CheckpointOptions {
  uri: string;
  stateRoot: string;
  /** The checkpoint root. */
  root: string;
  /** Env id, dir or suite (as `ost down`). */
  env?: string;
  name: string;
  /** Leave the env paused afterwards. */
  stop?: boolean;
  /** Replace a checkpoint of that name. */
  replace?: boolean;
  /** The content key to record (ost up --checkpoint-cache knows it); else computed from suiteOf. */
  key?: string;
  /** The suite the env was started from, as its file reads now (for the content key); none if gone. */
  suiteOf?: (r: EnvRecord) => Environment | undefined;
  reporter: Reporter;
  /** Ctrl-C: a checkpoint interrupted while the VMs are paused resumes them all. */
  signal?: AbortSignal;
}

/** The disks of a VM, root disk first: guest device, the file the VM writes now, its format. */
export function vmDisks(vm: VmRecord): { dev: string; top: string; base?: string }[] {
  return [
    { dev: 'vda', top: vm.overlay, base: overlayBaseOf(vm) },
    // extra disks are sda, sdb, … (virtio-scsi), in suite order, as up renders them
    ...vm.disks.map((d) => ({ dev: d.name, top: d.path })),
  ];
}

/** `<name>.c<N>.qcow2` beside `top`: the next generation of a disk's writable top. */
export function nextTop(top: string): string {
  const dir = path.dirname(top);
  const base = path.basename(top).replace(/(\.c\d+)?\.(qcow2|raw)$/, '');
  const m = /\.c(\d+)\.qcow2$/.exec(top);
  return path.join(dir, `${base}.c${m ? Number(m[1]) + 1 : 1}.qcow2`);
}

/** The images an env's VMs run on, as the content key names them. */
export function recordImages(r: EnvRecord): Map<string, KeyImage> {
  return new Map(
    r.vms.map((vm) => [
      vm.name,
      { ref: vm.image.ref, path: vm.image.path, package: vm.image.package, custom: vm.image.custom?.key },
    ]),
  );
}

/** The content key of a checkpoint of `r`; empty when its suite file cannot be read any more. */
function keyOf(r: EnvRecord, name: string, suite: Environment | undefined): string {
  return suite ? contentKey(suite, recordImages(r), r.ipMode, name) : '';
}

async function domState(run: VirshRun, name: string): Promise<string> {
  const r = await run(['domstate', name], { allowFailure: true });
  return r.exitCode === 0 ? r.stdout.trim() : 'gone';
}

/** OST's `deployed` marker in the deployment dir, or (ost's own suites) an env whose deploy scripts ran. */
async function wasDeployed(r: EnvRecord): Promise<boolean> {
  if (r.kind === 'ost-json')
    return fs.lstat(path.join(r.deployment?.dir ?? r.workdir, 'deployed')).then(
      () => true,
      () => false,
    );
  return r.deployed === true;
}

export type Tops = Map<string, { dev: string; top: string; next: string; base?: string }[]>;
type Draft = Awaited<ReturnType<typeof startCheckpoint>>;

/** Every VM of the env must run (or be paused by a killed checkpoint) to be checkpointed. */
async function checkRunning(uri: string, rec: EnvRecord): Promise<void> {
  const run: VirshRun = (args, opts) => virsh(uri, args, opts);
  const states = await Promise.all(rec.vms.map((vm) => domState(run, vm.libvirtName)));
  const bad = rec.vms.filter((_, i) => !['running', 'paused'].includes(states[i] as string));
  if (bad.length > 0)
    throw new OstError(
      `environment ${rec.id}: ${bad.map((vm) => `${vm.name} is ${states[rec.vms.indexOf(vm)]}`).join(', ')}`,
      `only an env whose VMs all run can be checkpointed: ost down ${rec.id} and up again`,
    );
}

/** Each disk's next writable top, made on the one the VM writes now and handed to qemu. */
async function newTops(rec: EnvRecord, qemu: Identity): Promise<Tops> {
  const tops: Tops = new Map();
  for (const vm of rec.vms) {
    const disks = [];
    for (const d of vmDisks(vm)) {
      const next = nextTop(d.top);
      // an extra disk's first top is the raw file up made; every later top is a qcow2 overlay
      await createOverlay(next, d.top, {}, /\.raw$/.test(d.top) ? 'raw' : 'qcow2');
      await handToQemu(next, qemu);
      disks.push({ ...d, next });
    }
    tops.set(vm.name, disks);
  }
  return tops;
}

/** Runs one virsh command on the env's connection (the words after `virsh -c URI`); a test passes its own. */
export type VirshRun = (args: readonly string[], opts?: ExecOptions) => Promise<ExecResult>;

/** What freezing an env's VMs needs: each VM's disks and their new tops, where memory goes, how to run virsh. */
export interface Freeze {
  vms: VmRecord[];
  tops: Tops;
  /** The checkpoint's draft dir: each VM's memory goes there. */
  memDir: string;
  run: VirshRun;
  /** Ctrl-C (SIGINT, SIGTERM, SIGHUP): stops the freeze, every VM resumed. */
  signal?: AbortSignal;
  reporter?: Reporter;
}

/** Resume every VM (one that runs already says so, and that is fine). */
async function resumeVms(vms: VmRecord[], run: VirshRun): Promise<void> {
  await Promise.all(vms.map((vm) => run(['resume', vm.libvirtName], { allowFailure: true })));
}

/**
 * Pause every VM at once, then snapshot each one (memory into `memDir`, disks switched to their new tops;
 * each VM's record says which it writes as soon as its snapshot is done). The resume of every VM is
 * registered before the first pause: an error or an interrupt while they are paused resumes them all before
 * it is thrown. Snapshots are not interrupted (libvirt finishes its job anyway): the caller checks
 * `signal` after them. Returns each snapshot's outcome and the resume, for the caller to run (or not: --stop).
 */
export async function freezeVms(
  f: Freeze,
): Promise<{ results: PromiseSettledResult<void>[]; resume: () => Promise<void> }> {
  const undo = new CleanupStack();
  undo.add('resume the paused VMs', () => resumeVms(f.vms, f.run));
  try {
    f.signal?.throwIfAborted();
    // all at once first: no VM runs on while another is being saved
    await Promise.all(
      f.vms.map(async (vm) => {
        const r = await f.run(['suspend', vm.libvirtName], { allowFailure: true });
        // paused already (a checkpoint killed after pausing) is as good
        if (r.exitCode !== 0 && (await domState(f.run, vm.libvirtName)) !== 'paused')
          throw new OstError(`cannot pause ${vm.name}: ${r.stderr.trim()}`, `ost status ${vm.name}`);
      }),
    );
    await faultPoint('checkpoint:paused', f.signal);
    f.signal?.throwIfAborted();
    const results = await Promise.allSettled(f.vms.map((vm) => snapshotVm(f, vm)));
    return { results, resume: () => undo.unwind(f.reporter) };
  } catch (err) {
    await undo.unwind(f.reporter);
    throw err;
  }
}

/** One VM's external snapshot: its memory saved, its disks on their new tops; its record follows. */
async function snapshotVm(f: Freeze, vm: VmRecord): Promise<void> {
  const t = f.tops.get(vm.name) ?? [];
  await f.run(
    [
      'snapshot-create-as',
      vm.libvirtName,
      '--no-metadata',
      '--reuse-external',
      '--atomic',
      '--memspec',
      `file=${path.join(f.memDir, `${vm.name}.mem`)},snapshot=external`,
      ...t.flatMap((d) => ['--diskspec', `${d.dev},snapshot=external,file=${d.next}`]),
    ],
    { timeoutMs: 600_000 },
  );
  // this VM writes its new tops now: the record says so whatever happens to the others
  vm.overlay = t[0]?.next ?? vm.overlay;
  vm.disks = vm.disks.map((d, i) => ({ ...d, path: t[i + 1]?.next ?? d.path }));
}

/** Pause every VM, save each one's memory and switch its disks to the new tops; returns the resume. */
async function freeze(
  o: CheckpointOptions,
  rec: EnvRecord,
  tops: Tops,
  draft: Draft,
): Promise<() => Promise<void>> {
  const run: VirshRun = (args, opts) => virsh(o.uri, args, opts);
  const frozen = await freezeVms({
    vms: rec.vms,
    tops,
    memDir: draft.dir,
    run,
    signal: o.signal,
    reporter: o.reporter,
  });
  try {
    await writeOutputs(rec);
    const failed = frozen.results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    o.signal?.throwIfAborted();
  } catch (err) {
    await frozen.resume();
    throw err;
  }
  return frozen.resume;
}

/** One VM's part of the checkpoint: its memory file, saved XML and frozen disks, in the draft dir. */
async function copyFrozen(o: CheckpointOptions, vm: VmRecord, tops: Tops, draft: Draft, qemu: Identity) {
  const memory = `${vm.name}.mem`;
  await fs.chmod(path.join(draft.dir, memory), 0o600);
  const xml = await virsh(o.uri, ['save-image-dumpxml', '--security-info', path.join(draft.dir, memory)]);
  await fs.writeFile(path.join(draft.dir, `${vm.name}.xml`), xml.stdout, { mode: 0o640 });
  const disks = [];
  for (const d of tops.get(vm.name) ?? []) {
    const file = `${vm.name}-${d.dev}`;
    const frozen = await freezeDisk(d.top, path.join(draft.dir, `${file}.tmp`), d.base);
    const name = `${file}.${frozen.format}`;
    await fs.rename(path.join(draft.dir, `${file}.tmp`), path.join(draft.dir, name));
    await fs.chmod(path.join(draft.dir, name), 0o440);
    await fs.chown(path.join(draft.dir, name), process.getuid?.() ?? 0, qemu.gid);
    disks.push({ dev: d.dev, file: name, format: frozen.format, backing: frozen.backing });
  }
  const sizeOf = async (f: string) => (await fs.stat(path.join(draft.dir, f))).blocks * 512;
  return {
    name: vm.name,
    libvirtName: vm.libvirtName,
    memory,
    xml: `${vm.name}.xml`,
    disks,
    memoryBytes: await sizeOf(memory),
    diskBytes: (await Promise.all(disks.map((d) => sizeOf(d.file)))).reduce((a, b) => a + b, 0),
  };
}

/** Freeze an env that is up into a checkpoint: new tops, one pause, memory saved, the frozen disks copied. */
async function takeLocked(o: CheckpointOptions, rec: EnvRecord, started: number): Promise<StoredCheckpoint> {
  const qemu = qemuIdentity();
  await checkRunning(o.uri, rec);
  const draft = await startCheckpoint(o.root, o.name, qemu.gid, o.replace ?? false);
  try {
    const tops = await step(o.reporter, 'prepare', 'new overlays for the running env', () =>
      newTops(rec, qemu),
    );
    const pausedAt = Date.now();
    // a failure or Ctrl-C while the VMs are paused resumes them (--stop or not): the env runs on as it was
    const resume = await step(o.reporter, 'freeze', `pause ${rec.vms.length} VMs, save their memory`, () =>
      freeze(o, rec, tops, draft),
    );
    if (!o.stop) await resume();
    const pauseMs = Date.now() - pausedAt;
    await faultPoint('checkpoint:saved');
    const vms: CheckpointVm[] = await step(o.reporter, 'copy', 'copy the frozen disks', () =>
      Promise.all(rec.vms.map((vm) => copyFrozen(o, vm, tops, draft, qemu))),
    );
    await faultPoint('checkpoint:copied');
    const sshKeys = await saveKeys(rec.vms, draft.dir);
    const record = {
      version: 1 as const,
      name: o.name,
      created: new Date().toISOString(),
      key: o.key ?? keyOf(rec, o.name, o.suiteOf?.(rec)),
      env: rec,
      deployed: await wasDeployed(rec),
      vms,
      sshKeys,
      timings: { pause: pauseMs, total: Date.now() - started },
    };
    await step(o.reporter, 'commit', `checkpoint ${o.name}`, () => draft.commit(record, o.replace ?? false));
    return { name: o.name, dir: draft.final, record, sizeBytes: await dirBytes(draft.final) };
  } catch (err) {
    await draft.discard();
    throw err;
  }
}

export async function takeCheckpoint(o: CheckpointOptions): Promise<StoredCheckpoint> {
  const started = Date.now();
  const { id } = await requireEnv(o.uri, o.stateRoot, o.env);
  const lock = await lockEnv(o.stateRoot, id, `checkpoint ${o.name}`);
  try {
    // found again under the lock: what a down or revert did before is seen
    const found = await requireEnv(o.uri, o.stateRoot, id);
    const rec = found.record;
    if (!rec || !isUp(found))
      throw new OstError(
        `environment ${found.id} is not up (${rec ? rec.status : 'its env.json is missing'}): only an env that is up can be checkpointed`,
        `ost status ${found.id}; bring it up first`,
      );
    return await takeLocked(o, rec, started);
  } finally {
    await lock.release();
  }
}
