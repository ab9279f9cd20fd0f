// `ost up`'s readiness phase: every VM waited for at once (guest/ready.ts), a VM whose qemu died in early
// boot started once more on a fresh overlay, and each VM's record given its wall-clock moments.
import * as fs from 'node:fs/promises';
import { errorMessage } from '../../core/errors.js';
import type { Reporter } from '../../core/events.js';
import { fileSize } from '../../core/fsutil.js';
import { type ReadyTarget, VmGoneError, type VmState, VmStuckError, waitReady } from '../../guest/ready.js';
import { createOverlay } from '../../tools/qemu-img.js';
import { virsh } from '../../tools/virsh.js';
import { overlayBaseOf, type VmRecord } from '../env-dir/record.js';
import { handToQemu, type Identity } from '../images/qemu-user.js';
import { parseDomState } from './domstate.js';

export interface WaitOptions {
  uri: string;
  timeoutMs: number;
  reporter: Reporter;
  signal?: AbortSignal;
  qemu: Identity;
  /** The domain XML each VM was created from (`virsh create` again for a second start). */
  domainXml: (vm: VmRecord) => string;
  /** An isolated env's network namespace: the guests are reached from inside it (SSH logins, no TCP probe). */
  netns?: string;
}

/** A domain's state for the readiness wait: a transient domain that stopped is gone, and says so. */
export async function domainState(uri: string, name: string): Promise<VmState> {
  const r = await virsh(uri, ['domstate', '--reason', name], { allowFailure: true });
  return parseDomState(r.exitCode, r.stdout);
}

/** Wait until every VM is SSH-ready; fills in systemState and the timings of each. */
export async function waitForVms(vms: readonly VmRecord[], o: WaitOptions): Promise<void> {
  await Promise.all(vms.map((vm) => waitForVm(vm, o)));
}

/**
 * A second start of a VM whose qemu died: a fresh overlay on the same base as the first (the custom layer
 * when the VM has one — never the bare image, or it would come back without its custom packages).
 */
export async function startAgain(
  vm: VmRecord,
  o: Pick<WaitOptions, 'uri' | 'qemu' | 'domainXml' | 'signal'>,
  start: (xml: string) => Promise<unknown> = (xml) => virsh(o.uri, ['create', xml], { signal: o.signal }),
): Promise<void> {
  await fs.rm(vm.overlay, { force: true });
  await createOverlay(vm.overlay, overlayBaseOf(vm), { signal: o.signal });
  await handToQemu(vm.overlay, o.qemu);
  await start(o.domainXml(vm));
  vm.timings.restarts = (vm.timings.restarts ?? 0) + 1;
}

async function waitForVm(vm: VmRecord, o: WaitOptions): Promise<void> {
  const title = `${vm.name}: boot to SSH`;
  o.reporter({ type: 'step', id: `ready-${vm.name}`, title, status: 'start' });
  const target: ReadyTarget = {
    vm: vm.name,
    ssh: { host: vm.address, port: 22, user: 'root', privateKey: vm.key, netns: o.netns },
    consoleLog: vm.consoleLog,
    // a TCP probe runs in ost's own namespace: an isolated env's guests are polled by logins from theirs
    poll: o.netns ? 'login' : 'tcp',
    state: () => domainState(o.uri, vm.libvirtName),
    goneHint: 'look at the console log and /var/log/libvirt/qemu/ for why it stopped',
  };
  const t0 = Date.now();
  let r: Awaited<ReturnType<typeof waitReady>>;
  try {
    r = await waitReady(target, o.timeoutMs, o.signal);
  } catch (err) {
    if (!(err instanceof VmGoneError)) throw err;
    // a qemu that dies in early boot (seen under TCG) gets one more start, on a fresh overlay
    o.reporter({
      type: 'warning',
      subject: vm.name,
      message: `${errorMessage(err)}\nstarting it once more`,
    });
    // a stuck VM still runs: stopped first (a gone one is gone already)
    if (err instanceof VmStuckError)
      await virsh(o.uri, ['destroy', vm.libvirtName], { allowFailure: true, signal: o.signal });
    // the log is appended to: the second boot's marker is searched for after the first's lines
    target.consoleFrom = await fileSize(vm.consoleLog);
    await startAgain(vm, o);
    vm.timings.startedAt = Date.now();
    r = await waitReady(target, Math.max(0, o.timeoutMs - (Date.now() - t0)), o.signal);
  }
  vm.systemState = r.systemState;
  vm.timings.bootToSsh = Date.now() - t0;
  vm.timings.readyAt = Date.now();
  // wall-clock moments of the wait: the guest said sshd is up (console marker), port 22 first answered,
  // the login that succeeded started
  const waitedFrom = vm.timings.readyAt - r.readyMs;
  if (r.markerMs !== undefined) vm.timings.sshdUpAt = waitedFrom + r.markerMs;
  if (r.tcpMs !== undefined) vm.timings.sshOpenAt = waitedFrom + r.tcpMs;
  vm.timings.loginAt = waitedFrom + r.loginMs;
  o.reporter({
    type: 'step',
    id: `ready-${vm.name}`,
    title,
    status: 'done',
    durationMs: vm.timings.bootToSsh,
    detail: `${vm.address}, systemd ${r.systemState}, ${r.markerMs !== undefined ? 'console marker' : `${r.probes} probes`}, ${r.logins} login${r.logins === 1 ? '' : 's'}`,
  });
}
