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

/** argv: run a command over SSH; host keys are not pinned (every VM generates fresh ones). */
export function sshArgv(t: SshTarget, command: string, connectTimeoutS = 10): string[] {
  return [
    ...inNetns(t.netns),
    'ssh',
    '-i',
    t.privateKey,
    '-p',
    String(t.port),
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'LogLevel=ERROR',
    '-o',
    `ConnectTimeout=${connectTimeoutS}`,
    `${t.user}@${t.host}`,
    command,
  ];
}
