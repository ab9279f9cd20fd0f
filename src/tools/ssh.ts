// OpenSSH client adapter for non-interactive commands against disposable test VMs.
import { inNetns } from './netns.js';

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  privateKey: string;
  /** A network namespace to run ssh in (an isolated env's, `ip netns exec`). */
  netns?: string;
}

/**
 * ssh's options and target for one VM, every option on the command line and no config file read (`-F
 * none`: neither a config another user could edit nor ~/.ssh/config); host keys are not pinned (every VM
 * generates fresh ones). `batch`: never prompt (scripts); a person's `ost ssh` leaves it off.
 */
export function sshTargetArgs(
  t: Omit<SshTarget, 'netns'>,
  o: { batch: boolean; connectTimeoutS?: number },
): string[] {
  return [
    '-F',
    'none',
    '-i',
    t.privateKey,
    '-p',
    String(t.port),
    ...(o.batch ? ['-o', 'BatchMode=yes'] : []),
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
    '-o',
    `ConnectTimeout=${o.connectTimeoutS ?? 10}`,
    `${t.user}@${t.host}`,
  ];
}

/** argv: run a command over SSH, non-interactively. */
export function sshArgv(t: SshTarget, command: string, connectTimeoutS = 10): string[] {
  return [...inNetns(t.netns), 'ssh', ...sshTargetArgs(t, { batch: true, connectTimeoutS }), command];
}
