// `ost ssh / exec / console`: a command, a shell or the serial console where an env's VMs are.
import type { OstConfig } from '../../core/config.js';
import { OstError, UsageError } from '../../core/errors.js';
import { runInteractive } from '../../core/exec.js';
import { lastLines } from '../../core/fsutil.js';
import { requireTool } from '../../core/require-tool.js';
import { stateRoot } from '../../launcher/env-dir/record.js';
import { requireEnv } from '../../launcher/select.js';
import { inNetns } from '../../tools/netns.js';
import { sshTargetArgs } from '../../tools/ssh.js';
import { libvirtUri } from '../../tools/virsh.js';
import type { EnvCommon } from './common.js';

async function vmOf(a: EnvCommon & { env?: string; vm: string }, config: OstConfig) {
  const uri = libvirtUri(a.connect, config.libvirtUri);
  const e = await requireEnv(uri, stateRoot(config), a.env);
  const vm = e.record?.vms.find((v) => v.name === a.vm || v.hostname === a.vm);
  if (!e.record || !vm) {
    const names = e.record?.vms.map((v) => v.name).join(', ') ?? '(env.json is missing)';
    throw new OstError(`no VM ${a.vm} in environment ${e.id}`, `VMs are: ${names}`);
  }
  return { uri, e, record: e.record, vm };
}

export async function sshCommand(
  a: EnvCommon & { env?: string; vm: string; command: string[] },
  config: OstConfig,
): Promise<number> {
  const { record, vm } = await vmOf(a, config);
  const ssh = requireTool('ssh');
  // every option on the command line, from root's own record: no config file another user could edit
  const argv = [
    ssh,
    ...sshTargetArgs({ host: vm.address, port: 22, user: 'root', privateKey: vm.key }, { batch: false }),
    ...a.command,
  ];
  // an isolated env's guests are reachable only from inside its namespace
  const [file, ...args] = [...inNetns(record.netns), ...argv] as [string, ...string[]];
  return runInteractive(file, args);
}

/**
 * `ost exec <env> -- cmd`: run a command where the env's guests are reachable — inside an isolated env's
 * network namespace (`ip netns exec`), else as it is — with OST_ENV_DIR set to the env dir.
 */
export async function execCommand(
  a: EnvCommon & { env?: string; command: string[] },
  config: OstConfig,
): Promise<number> {
  if (a.command.length === 0) throw new UsageError('name the command to run: ost exec <env> -- <command> …');
  const e = await requireEnv(libvirtUri(a.connect, config.libvirtUri), stateRoot(config), a.env);
  if (!e.record) throw new OstError(`environment ${e.id} has no env.json`, `ost down ${e.id}`);
  const [file, ...args] = [...inNetns(e.record.netns), ...a.command] as [string, ...string[]];
  return runInteractive(file, args, { OST_ENV_DIR: e.record.workdir });
}

export async function consoleCommand(
  a: EnvCommon & { env?: string; vm: string; log: boolean; lines: number },
  config: OstConfig,
): Promise<number> {
  const { uri, vm } = await vmOf(a, config);
  if (a.log) {
    process.stdout.write(`${(await lastLines(vm.consoleLog, a.lines)).join('\n')}\n`);
    return 0;
  }
  return runInteractive(requireTool('virsh'), ['-c', uri, 'console', vm.libvirtName]);
}
