// Guest readiness, one module for `ost up` (VMs on libvirt bridges) and `ost boot-image` (qemu with a
// user-mode forward): a VM is ready when one SSH login with its key sees systemd running or degraded.
// When to log in: images built by ost write READY_MARKER on their serial console the moment sshd accepts
// (a unit of the base layer), which this module watches in the console log ost keeps anyway, so the login
// starts within ~0.1 s and overlaps the rest of the boot. Images without the marker (older RPMs, imports)
// are found by polling, which runs alongside: a TCP probe of port 22 started every 0.2 s on a bridge (each
// with its own timeout, so a SYN lost before the guest's network is up holds none of the later ones back),
// or SSH attempts backing off to 8 s behind qemu's forward (which accepts every connection). One deadline per VM;
// a VM that stops or is paused fails the wait at once; a timeout shows the last lines of the console.
import { OstError, ToolError } from '../core/errors.js';
import { lastLines } from '../core/fsutil.js';
import { sleep } from '../core/timers.js';
import { runArgv } from '../tools/run-tool.js';
import { type SshTarget, sshArgv } from '../tools/ssh.js';
import { ConsoleWatch, PortWatch, PROBE_INTERVAL_MS } from './sightings.js';

export { ConsoleWatch, PortWatch, PROBE_INTERVAL_MS } from './sightings.js';

/** What the base layer's ost-ready.service writes on the serial console once sshd accepts (then the boot id). */
export const READY_MARKER = 'ost-sshd-ready';

/** A VM's state while it boots; `detail` of a gone one: what its qemu said last. */
export type VmState =
  | { kind: 'running' }
  | { kind: 'gone'; detail?: string }
  | { kind: 'paused'; reason: string };

/** The VM stopped (its qemu died, or it powered off) before it was ready. */
export class VmGoneError extends OstError {}

/**
 * The VM runs but its boot stands still for good: its kernel lost a timer interrupt. Seen under TCG with
 * 2-vCPU guests on a loaded 2-core host (qemu 7.2): the RCU grace-period thread's timer never fires, udev
 * blocks, nothing moves again. Like a VM that is gone, one that is stuck is worth one more start.
 */
export class VmStuckError extends VmGoneError {}

/** What the guest kernel prints when a timer it armed fired far too late, or never. */
export const LOST_TIMER_SIGN = "kthread timer wakeup didn't happen";
/**
 * The RCU stall report: a guest starved of CPU for a while may print one or two and go on; a stuck one
 * prints another every 21 s of its time. Stuck = a lost timer and this many stall reports.
 */
export const STALL_SIGN = 'rcu_preempt detected stalls';
export const STUCK_STALLS = 3;

export interface ReadyTarget {
  vm: string;
  ssh: SshTarget;
  consoleLog: string;
  /** Bytes of the console log from before this boot (a restarted VM's log is appended to): not searched. */
  consoleFrom?: number;
  /**
   * How polling sees sshd: `tcp` probes the port (a VM on a bridge: a SYN costs nothing); `login` tries
   * SSH itself with backoff (qemu's user-mode forward accepts every connection, whatever the guest does).
   */
  poll: 'tcp' | 'login';
  /** The VM's state, asked every few seconds while waiting. */
  state?: () => Promise<VmState>;
  /** What to look at when the VM stopped while booting. */
  goneHint?: string;
}

export interface ReadyResult {
  /** `running` or `degraded`. */
  systemState: string;
  /** When the console showed READY_MARKER, from the start of the wait (undefined: it never did). */
  markerMs?: number;
  /** When port 22 first accepted a connection (tcp polling only). */
  tcpMs?: number;
  /** When the login that succeeded was started. */
  loginMs: number;
  readyMs: number;
  /** TCP probes and SSH logins made. */
  probes: number;
  logins: number;
}

/** SSH attempts behind a user-mode forward: 1 s, doubling to 8 s. */
const LOGIN_BACKOFF_MS = { first: 1000, max: 8000 };
/** How often the VM's state is asked (a VM that died fails the wait within this). */
const STATE_INTERVAL_MS = 4000;

/** The last lines of a serial console log, indented, for an error message. */
async function consoleTail(log: string): Promise<string> {
  const tail = await lastLines(log, 20);
  return `last lines of its serial console (${log}):\n${tail.map((l) => `  | ${l}`).join('\n') || '  (empty)'}`;
}

/** Wait until the VM answers SSH and systemd reports running/degraded, or throw at the deadline. */
export async function waitReady(
  t: ReadyTarget,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<ReadyResult> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  const watch = new ConsoleWatch(t.consoleLog, READY_MARKER, t.consoleFrom);
  const lostTimer = watch.also(LOST_TIMER_SIGN);
  const stalls = watch.also(STALL_SIGN, STUCK_STALLS);
  const isStuck = () => lostTimer.seenAt !== undefined && stalls.seenAt !== undefined;
  const port = t.poll === 'tcp' ? new PortWatch(t.ssh.host, t.ssh.port) : undefined;
  const ms = (at: number | undefined) => (at === undefined ? undefined : at - started);
  let logins = 0;
  let nextLoginAt = 0;
  let backoff = LOGIN_BACKOFF_MS.first;
  let stateAskedAt = 0;
  let last = t.poll === 'tcp' ? 'port 22 not open yet' : 'no SSH login yet';
  const sshdSeen = () => watch.seenAt !== undefined || port?.seenAt !== undefined;
  // a wait that the first sign of sshd cuts short
  const pause = (ms: number) =>
    Promise.race([
      sleep(Math.max(0, ms), signal),
      watch.appeared,
      stalls.appeared,
      ...(port ? [port.appeared] : []),
    ]);
  try {
    for (;;) {
      signal?.throwIfAborted();
      const left = deadline - Date.now();
      if (left <= 0) break;
      // a kernel that lost a timer before sshd came up does not come back (one after sshd is left alone)
      if (isStuck() && !sshdSeen())
        throw new VmStuckError(
          `VM ${t.vm} stalled while booting: its kernel says a timer never fired ("${LOST_TIMER_SIGN}") and RCU stalled ${STUCK_STALLS} times, a hang seen under TCG with several vCPUs on a loaded host\n${await consoleTail(t.consoleLog)}`,
          t.goneHint,
        );
      if (sshdSeen() || (t.poll === 'login' && Date.now() >= nextLoginAt)) {
        logins++;
        const login = await loginOnce(t, started, deadline, signal);
        if (login.timedOut) {
          last = login.last;
          break;
        }
        if (login.state)
          return {
            systemState: login.state,
            markerMs: ms(watch.seenAt),
            tcpMs: ms(port?.seenAt),
            loginMs: login.at - started,
            readyMs: Date.now() - started,
            probes: port?.probes ?? 0,
            logins,
          };
        last = login.last;
        if (t.poll === 'login' && watch.seenAt === undefined) {
          nextLoginAt = Date.now() + backoff;
          backoff = Math.min(backoff * 2, LOGIN_BACKOFF_MS.max);
        }
      }
      // libvirt's view costs a virsh run: asked every few seconds, not at every probe
      if (t.state && Date.now() - stateAskedAt >= STATE_INTERVAL_MS) {
        stateAskedAt = Date.now();
        await failIfStopped(t, await t.state(), last);
      }
      const remaining = deadline - Date.now();
      const toState = t.state ? stateAskedAt + STATE_INTERVAL_MS - Date.now() : remaining;
      // after the first sign of sshd only a failed login gets here: it is retried at the probe interval
      if (sshdSeen()) await sleep(Math.min(PROBE_INTERVAL_MS, remaining), signal);
      else if (t.poll === 'login') await pause(Math.min(nextLoginAt - Date.now(), toState, remaining));
      else await pause(Math.min(toState, remaining));
    }
  } finally {
    watch.stop();
    port?.stop();
  }
  throw await notReady(t, timeoutMs, started, watch.seenAt, last);
}

/** The timeout's error: what was seen of sshd, the last thing that failed, and the console's tail. */
async function notReady(
  t: ReadyTarget,
  timeoutMs: number,
  started: number,
  markerAt: number | undefined,
  last: string,
): Promise<OstError> {
  const marker =
    markerAt === undefined
      ? 'no readiness marker on its console'
      : `its console said sshd is up ${((markerAt - started) / 1000).toFixed(1)}s in`;
  return new OstError(
    `VM ${t.vm} (${t.ssh.host}) was not ready within ${Math.round(timeoutMs / 1000)}s (${marker}; last: ${last})\n` +
      (await consoleTail(t.consoleLog)),
    'raise --timeout on a slow host, or look at the console log for a boot problem',
  );
}

/**
 * One SSH login that waits for the boot's end (`systemctl is-system-running --wait`): systemd's state once
 * it is running or degraded, else what failed; `timedOut` when the login had not returned by the deadline.
 */
async function loginOnce(
  t: ReadyTarget,
  started: number,
  deadline: number,
  signal?: AbortSignal,
): Promise<{ at: number; state?: string; last: string; timedOut?: boolean }> {
  const at = Date.now();
  let res: Awaited<ReturnType<typeof runArgv>>;
  try {
    res = await runArgv(sshArgv(t.ssh, 'systemctl is-system-running --wait', 10), {
      allowFailure: true,
      timeoutMs: Math.max(deadline - at, 1000),
      signal,
    });
  } catch (e) {
    if (!(e instanceof ToolError) || e.kind !== 'timed-out') throw e;
    // the login (once in, it waits for the boot's end) had not returned by the deadline: what the boot
    // still runs, when a second login gets that far
    return {
      at,
      timedOut: true,
      last: `the SSH login started ${((at - started) / 1000).toFixed(0)}s in was still waiting for systemctl is-system-running --wait${await pendingJobs(t)}`,
    };
  }
  const state = res.stdout.trim().split('\n').pop() ?? '';
  if (res.exitCode !== 255 && (state === 'running' || state === 'degraded')) return { at, state, last: '' };
  return {
    at,
    last:
      res.exitCode === 255
        ? `ssh: ${res.stderr.trim().split('\n').pop() ?? 'failed'}`
        : `systemd is ${state || 'unknown'}`,
  };
}

/** The boot's queued jobs (`systemctl list-jobs`) over a short SSH login, for a timeout's message. */
async function pendingJobs(t: ReadyTarget): Promise<string> {
  try {
    const r = await runArgv(sshArgv(t.ssh, 'systemctl list-jobs --no-legend --no-pager', 10), {
      allowFailure: true,
      timeoutMs: 10_000,
    });
    const jobs = r.stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length >= 4 && f[3] === 'running')
      .map((f) => f[1]);
    return jobs.length > 0 ? `; running jobs: ${jobs.join(', ')}` : '';
  } catch {
    return '';
  }
}

async function failIfStopped(t: ReadyTarget, st: VmState, last: string): Promise<void> {
  if (st.kind === 'gone') {
    throw new VmGoneError(
      `VM ${t.vm} stopped while booting (its qemu exited; ${last})${st.detail ? `\nqemu: ${st.detail}` : ''}\n${await consoleTail(t.consoleLog)}`,
      t.goneHint ?? 'look at the console log for why it stopped',
    );
  }
  if (st.kind === 'paused') {
    throw new OstError(
      `VM ${t.vm} was paused by qemu while booting (${st.reason})\n${await consoleTail(t.consoleLog)}`,
      /I\/O error/i.test(st.reason)
        ? 'qemu pauses a guest whose disk write failed: make room where its overlay lives (df), or use --overlay-dir / --overlay-reserve'
        : 'look at the console log and /var/log/libvirt/qemu/ for why',
    );
  }
}
