// After a restore a guest's clock stands where it stood at the checkpoint. One SSH session per VM sets it
// to the host's: the guest says it is listening, the host answers with its time at that moment (the line
// arrives in milliseconds over the env's bridge), the guest sets it and reports back. That session is also
// the VM's readiness check after a restore. (The guest agent's `domtime --sync` runs only where the agent
// does — not in every image — and costs a virsh call besides the login.)
import { OstError } from '../../core/errors.js';
import { startPiped } from '../../core/exec.js';
import { type SshTarget, sshArgv } from '../../tools/ssh.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The guest side: announce, read the host's epoch, set it, print the guest's epoch after. */
export const CLOCK_SCRIPT = 'echo ost-clock; read t; date -u -s "@$t" >/dev/null && date +%s.%N';

export interface ClockResult {
  /** Guest minus host after setting, ms (the last line's read against the host clock when it arrived). */
  offsetMs: number;
  /** SSH sessions tried. */
  attempts: number;
}

/** Set the guest's clock over SSH, retrying until `timeoutMs` (a restored guest answers at once). */
export async function syncClock(t: SshTarget, timeoutMs: number, signal?: AbortSignal): Promise<ClockResult> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (let attempts = 1; ; attempts++) {
    signal?.throwIfAborted();
    const [file, ...args] = sshArgv(t, CLOCK_SCRIPT, 10);
    const lines: { text: string; at: number }[] = [];
    const p = startPiped(file as string, args, {
      onLine: (line) => {
        lines.push({ text: line, at: Date.now() });
        if (line === 'ost-clock') p.write(`${(Date.now() / 1000).toFixed(3)}\n`);
      },
      signal,
      timeoutMs: Math.max(1000, deadline - Date.now()),
    });
    const code = await p.exited;
    const after = lines.find((l) => /^\d+\.\d+$/.test(l.text));
    if (code === 0 && after) return { offsetMs: Math.round(Number(after.text) * 1000 - after.at), attempts };
    last = p.stderrTail().pop() ?? `exit ${code ?? 'signal'}`;
    // 255: ssh could not get in (yet); anything else is the guest refusing, which a retry will not change
    if ((code !== 255 && code !== undefined) || Date.now() + 300 >= deadline)
      throw new OstError(
        `could not set the clock of ${t.host} after a restore (ssh: ${last})`,
        'the VM runs (ost status): log in with ost ssh and look, or ost revert again',
      );
    await sleep(300);
  }
}
