// SSH readiness: a TCP probe of port 22 every half second (a SYN to a VM on a local bridge costs nothing;
// the earlier backoff to 8 s noticed a ready guest a median 6.7 s late, BENCHMARKS.md issue 13), then one
// SSH login that waits for systemd to settle. One deadline per VM; a timeout shows the last lines of the
// VM's serial console.
import { connect } from 'node:net';
import { OstError } from '../../core/errors.js';
import { lastLines } from '../../core/fsutil.js';
import { sleep } from '../../core/timers.js';
import { runArgv } from '../../tools/run-tool.js';
import { sshArgv } from '../../tools/ssh.js';

export interface ReadyTarget {
  vm: string;
  address: string;
  key: string;
  consoleLog: string;
  /**
   * The VM's libvirt state (`virsh domstate --reason`), asked between probes: a VM that is gone or that
   * qemu paused (an I/O error: the disk holding its overlay is full) fails the wait at once.
   */
  state?: () => Promise<VmState>;
}

/** The last lines of a serial console log, indented, for an error message. */
async function consoleTail(log: string): Promise<string> {
  const tail = await lastLines(log, 20);
  return `last lines of its serial console (${log}):\n${tail.map((l) => `  | ${l}`).join('\n') || '  (empty)'}`;
}

export type VmState = { kind: 'running' } | { kind: 'gone' } | { kind: 'paused'; reason: string };

/**
 * `virsh domstate --reason` as a VmState: `running (booted)`, `paused (I/O error)`; a failed call (no such
 * domain: transient ones vanish when they stop), `shut off` or `crashed` is gone.
 */
export function parseDomState(exitCode: number, stdout: string): VmState {
  const text = stdout.trim();
  if (exitCode !== 0 || /^(shut off|crashed)/.test(text)) return { kind: 'gone' };
  const paused = /^paused(?: \((.*)\))?/.exec(text);
  if (paused) return { kind: 'paused', reason: paused[1] ?? 'paused' };
  return { kind: 'running' };
}

/** The VM stopped (its qemu died, or it powered off) before it was ready. */
export class VmGoneError extends OstError {}

export interface ReadyResult {
  /** `running` or `degraded`. */
  systemState: string;
  /** When port 22 first accepted a connection, from the start of the wait. */
  tcpMs: number;
  readyMs: number;
  probes: number;
}

function tcpOpen(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Pause between probes. */
export const PROBE_INTERVAL_MS = 500;
/** A probe's connect timeout: a guest whose network is not up yet does not answer ARP, so connect hangs. */
const CONNECT_TIMEOUT_MS = 2000;
/** How often the VM's libvirt state is asked while waiting (a VM that died fails the wait within this). */
const STATE_INTERVAL_MS = 4000;

/** Wait until the VM answers SSH and systemd reports running/degraded, or throw at the deadline. */
export async function waitReady(
  t: ReadyTarget,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<ReadyResult> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  let probes = 0;
  let tcpMs: number | undefined;
  let last = 'port 22 not open yet';
  const target = { host: t.address, port: 22, user: 'root', privateKey: t.key };
  let stateAskedAt = 0;
  for (;;) {
    signal?.throwIfAborted();
    const left = deadline - Date.now();
    if (left <= 0) break;
    probes++;
    if (await tcpOpen(t.address, 22, Math.min(CONNECT_TIMEOUT_MS, left))) {
      tcpMs ??= Date.now() - started;
      const res = await runArgv(sshArgv(target, 'systemctl is-system-running --wait', 10), {
        allowFailure: true,
        timeoutMs: Math.max(left, 1000),
        signal,
      });
      const state = res.stdout.trim().split('\n').pop() ?? '';
      if (res.exitCode !== 255 && (state === 'running' || state === 'degraded')) {
        return { systemState: state, tcpMs, readyMs: Date.now() - started, probes };
      }
      last =
        res.exitCode === 255
          ? `ssh: ${res.stderr.trim().split('\n').pop() ?? 'failed'}`
          : `systemd is ${state || 'unknown'}`;
    }
    // libvirt's view costs a virsh run: asked every few seconds, not at every probe
    const askState = t.state && Date.now() - stateAskedAt >= STATE_INTERVAL_MS;
    if (askState) stateAskedAt = Date.now();
    const st = askState && t.state ? await t.state() : { kind: 'running' as const };
    if (st.kind === 'gone') {
      throw new VmGoneError(
        `VM ${t.vm} stopped while booting (its qemu exited; ${last})\n${await consoleTail(t.consoleLog)}`,
        'look at the console log and /var/log/libvirt/qemu/ for why it stopped',
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
    await sleep(Math.min(PROBE_INTERVAL_MS, Math.max(0, deadline - Date.now())), signal);
  }
  throw new OstError(
    `VM ${t.vm} (${t.address}) was not ready within ${Math.round(timeoutMs / 1000)}s (last: ${last})\n` +
      (await consoleTail(t.consoleLog)),
    'raise --timeout on a slow host, or look at the console log for a boot problem',
  );
}
