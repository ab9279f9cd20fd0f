// libvirt's view of a booting VM, for the readiness wait (guest/ready.ts): gone, paused, or running.
import type { VmState } from '../../guest/ready.js';

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
