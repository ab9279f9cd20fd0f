// virsh adapter: argv builders and parsers for the transient networks and domains the launcher creates.
import type { ExecOptions, ExecResult } from '../core/exec.js';
import { runArgv } from './run-tool.js';

/** The libvirt connection: `--connect`, else LIBVIRT_DEFAULT_URI, else the system instance. */
export function libvirtUri(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  return explicit ?? env.LIBVIRT_DEFAULT_URI ?? 'qemu:///system';
}

/** argv: `virsh -c URI -q <args>`. */
export function virshArgv(uri: string, args: readonly string[]): string[] {
  return ['virsh', '-c', uri, '-q', ...args];
}

/** Run virsh; throws ToolError on a non-zero exit unless allowFailure. */
export function virsh(uri: string, args: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
  return runArgv(virshArgv(uri, args), { timeoutMs: 120_000, ...opts });
}

/** Parse `virsh list --name` / `virsh net-list --name`: one name per line, blank lines dropped. */
export function parseNames(stdout: string): string[] {
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

/** Whether a failed virsh call said the object does not exist (so removing it is already done). */
export function isNotFound(res: ExecResult): boolean {
  return /no (domain|network) with matching name|Domain not found|Network not found|not found/i.test(
    res.stderr,
  );
}
