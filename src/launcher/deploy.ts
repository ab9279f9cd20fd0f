// Deploy scripts: each file is sent over SSH to `bash -s` on its VM as it is (uploaded, never
// interpolated); one VM's scripts run in order, VMs at once. A failing script names itself and its output.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError, ToolError } from '../core/errors.js';
import { runArgv } from '../tools/run-tool.js';
import { sshArgv } from '../tools/ssh.js';
import type { Environment, EnvVm } from './env/model.js';
import type { VmRecord } from './env-dir/record.js';

export async function runDeployScripts(
  vms: readonly EnvVm[],
  records: readonly VmRecord[],
  logDir: string,
  signal?: AbortSignal,
): Promise<void> {
  await Promise.all(
    vms.map(async (vm) => {
      const r = records.find((x) => x.name === vm.name) as VmRecord;
      const log = path.join(logDir, `deploy-${vm.name}.log`);
      for (const script of vm.deployScripts) {
        const body = await fs.readFile(script.file, 'utf8');
        await runArgv(sshArgv({ host: r.address, port: 22, user: 'root', privateKey: r.key }, 'bash -s'), {
          input: body,
          signal,
          logFile: log,
        }).catch((err: unknown) => {
          throw new OstError(
            `deploy script ${script.file} failed on ${vm.name}${failureTail(err)}`,
            'fix the script and run ost up again (--keep-on-failure leaves the VMs up to look at)',
            err,
          );
        });
      }
    }),
  );
}

/**
 * The suite's host deploy scripts, in order, once the VMs are deployed: each run by bash with the env's
 * env.sh sourced first (the VMs' addresses, the key, what OST's harness reads), in the env file's folder, as
 * the user ost runs as; output to `<env dir>/deploy-host.log`. A failing one names itself and its output.
 */
export async function runHostDeployScripts(
  env: Environment,
  workdir: string,
  signal?: AbortSignal,
  trusted: readonly number[] = [0],
): Promise<void> {
  const envSh = path.join(workdir, 'env.sh');
  for (const script of env.hostDeployScripts ?? []) {
    const who = await untrustedOnTheWay(script.file, trusted);
    if (who)
      throw new OstError(
        `host deploy script ${script.file}: ${who}, and ost runs it as uid ${process.geteuid?.() ?? 0}`,
        "a host deploy script runs with ost's rights: keep it (and every folder on its way) writable by you and root alone",
      );
    // the paths are arguments, never spliced into the shell text
    const argv = ['bash', '-c', '. "$1" && exec bash "$2"', 'ost-host-deploy', envSh, script.file];
    await runArgv(argv, {
      cwd: path.dirname(env.file),
      signal,
      logFile: path.join(workdir, 'deploy-host.log'),
      timeoutMs: 2 * 60 * 60_000,
    }).catch((err: unknown) => {
      throw new OstError(
        `host deploy script ${script.file} failed${failureTail(err)}`,
        'fix the script and run ost up again (--keep-on-failure leaves the VMs up to look at)',
        err,
      );
    });
  }
}

/** The last lines of a failed tool's output, indented, after a colon (none: empty). */
function failureTail(err: unknown): string {
  if (!(err instanceof ToolError) || err.tail.length === 0) return '';
  return `:\n${err.tail
    .slice(-10)
    .map((l) => `  | ${l}`)
    .join('\n')}`;
}

/**
 * The first thing on the way to `file` (each folder from /, then the file) that a uid other than `trusted`
 * could change — owned by another, or writable by group or others (a sticky folder only on the way) —, in
 * words; undefined when there is none. Root's ost runs a host deploy script with root's rights.
 */
export async function untrustedOnTheWay(
  file: string,
  trusted: readonly number[],
): Promise<string | undefined> {
  const parts = path.resolve(file).split(path.sep).filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const p = path.join(path.sep, ...parts.slice(0, i));
    const st = await fs.lstat(p);
    const last = i === parts.length;
    if (!trusted.includes(st.uid)) return `${p} is owned by uid ${st.uid}`;
    const sticky = (st.mode & 0o1000) !== 0 && !last;
    if ((st.mode & 0o022) !== 0 && !sticky) return `${p} can be changed by its group or by anyone`;
    if (last && st.isSymbolicLink()) return `${p} is a symbolic link`;
  }
  return undefined;
}
