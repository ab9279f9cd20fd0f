// virsh adapter: argv builders and parsers for the transient networks and domains the launcher creates.
import { OstError, ToolError } from '../core/errors.js';
import type { ExecOptions, ExecResult } from '../core/exec.js';
import { runArgv } from './run-tool.js';

/**
 * The libvirt connection: `--connect`, else `configured` (the CLI's config: LIBVIRT_DEFAULT_URI, else the
 * system instance).
 */
export function libvirtUri(explicit: string | undefined, configured: string): string {
  return explicit ?? configured;
}

/** argv: `virsh -c URI -q <args>`. */
export function virshArgv(uri: string, args: readonly string[]): string[] {
  return ['virsh', '-c', uri, '-q', ...args];
}

/** Whether virsh said it cannot reach libvirtd. */
export function isConnectFailure(stderr: string): boolean {
  return /failed to connect to the hypervisor|Failed to connect socket/i.test(stderr);
}

/**
 * Run virsh; throws ToolError on a non-zero exit unless allowFailure. Not reaching libvirtd at all is
 * always an OstError saying so, whatever allowFailure says.
 */
export async function virsh(uri: string, args: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
  try {
    const res = await runArgv(virshArgv(uri, args), { timeoutMs: 120_000, ...opts });
    if (res.exitCode !== 0 && isConnectFailure(res.stderr)) throw connectError(uri, res.stderr);
    return res;
  } catch (err) {
    if (err instanceof ToolError && isConnectFailure(err.tail.join('\n')))
      throw connectError(uri, err.tail.join('\n'));
    throw err;
  }
}

function connectError(uri: string, stderr: string): OstError {
  const why = stderr.trim().split('\n').filter(Boolean).pop() ?? '';
  return new OstError(
    `cannot reach libvirt at ${uri}: ${why}`,
    'start libvirtd (systemctl start libvirtd, or libvirtd -d), or pass --connect / set LIBVIRT_DEFAULT_URI',
  );
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
  // virsh 9.0: "error: failed to get domain 'x'" (domains), "... Network not found: no network with matching name"
  return /failed to get (domain|network)|no (domain|network) with matching name|(Domain|Network) not found/i.test(
    res.stderr,
  );
}

/** The names of the running domains (`virsh list --name`). */
export async function runningDomains(uri: string, opts?: ExecOptions): Promise<string[]> {
  return parseNames((await virsh(uri, ['list', '--name'], opts)).stdout);
}

/** Stop a domain at once (`virsh destroy`: a transient one is gone then); one already gone is no error. */
export async function destroyDomain(uri: string, name: string, opts?: ExecOptions): Promise<void> {
  await virsh(uri, ['destroy', name], { ...opts, allowFailure: true });
}
