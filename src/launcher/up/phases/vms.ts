// The VM phases: domains (every VM created or restored at once, by the start strategy), ready (booted VMs
// waited for, restored ones resumed), the IPv6 SOCKS helper of `ost.sh run -6`, and the deploy scripts.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { InternalError, OstError } from '../../../core/errors.js';
import { faultPoint } from '../../../core/fault.js';
import { atomicWriteFile } from '../../../core/fsutil.js';
import { runDeployScripts, runHostDeployScripts } from '../../deploy.js';
import { publishSshdPid } from '../../env-dir/deployment.js';
import { SSHD_AUTHORIZED_KEY, startSshdProxy, stopSshdProxy } from '../../ipv6-proxy.js';
import { layoutOf, settleAll } from '../context.js';
import type { Phase, StartStrategy } from '../phase.js';

export function domainsPhase(strategy: StartStrategy): Phase {
  return {
    id: 'domains',
    title: (plan) => strategy.domainsTitle(plan),
    steps: (plan) => [
      { title: `write each domain's XML to ${path.join(plan.workdir, 'libvirt')}/domain-<vm>.xml` },
      ...plan.vms.flatMap((vm) => strategy.startSteps(plan, vm)),
    ],
    async run(ctx) {
      await settleAll(ctx.record.vms, async (vm) => {
        const planned = ctx.plan.vms.find((v) => v.name === vm.name);
        if (!planned) throw new InternalError(`no VM ${vm.name} in the plan`);
        await strategy.start(ctx, vm, planned);
      });
      await faultPoint('up:domains');
    },
  };
}

export function readyPhase(strategy: StartStrategy): Phase {
  return {
    id: 'ready',
    title: (plan) => strategy.readyTitle(plan),
    skip: (plan) => !strategy.waits(plan),
    steps: (plan) => strategy.readySteps(plan),
    run: (ctx) => strategy.ready(ctx),
  };
}

/**
 * The proxy sshd's authorized key: the env key's public half in `<env dir>/proxy/authorized_keys` — root's,
 * 0644 in a 0755 folder under the 0711 env dir. sshd reads a user's authorized keys as that user (the
 * proxy user is the user of sudo, who runs OST's pytest) and its StrictModes wants them root's or theirs,
 * writable by nobody else: `keys/` (0700) is out of their reach.
 */
async function proxyAuthorizedKey(workdir: string, key: string): Promise<string> {
  // every env key has its public half beside it (makeKey)
  const pub = await fs.readFile(`${key}.pub`, 'utf8');
  const file = path.join(workdir, SSHD_AUTHORIZED_KEY);
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  await fs.chmod(dir, 0o755);
  await atomicWriteFile(file, pub, 0o644);
  return file;
}

export const proxyPhase: Phase = {
  id: 'proxy',
  title: (_plan, ctx) =>
    `SOCKS helper sshd on [${ctx?.layout?.networks.find((n) => n.management)?.ipv6?.gateway ?? '<management IPv6 gateway>'}]:2222 (ost.sh run -6)`,
  skip: (plan, ctx) => (ctx ? !ctx.proxy : !(plan.ostSuite && plan.ipMode === 'ipv6')),
  steps: () => [
    {
      title:
        "sshd -D -e with OST's common/helpers/sshd_config on [<management IPv6 gateway>]:2222, the env's key as host key, its .pub the one authorized key",
    },
  ],
  async run(ctx) {
    const p = ctx.proxy;
    if (!p) throw new InternalError('the proxy phase runs only with a SOCKS helper to start');
    const mgmt = layoutOf(ctx).networks.find((n) => n.management);
    const vm0 = ctx.record.vms[0];
    if (!mgmt?.ipv6 || !vm0)
      throw new OstError(
        `suite ${ctx.plan.suite} has no IPv6 management network for --ipv6-only's SOCKS helper`,
        'give the management network IPv6, or leave out --ipv6-only',
      );
    const gateway = mgmt.ipv6.gateway;
    ctx.undo.add('IPv6 proxy sshd', async () => {
      await stopSshdProxy(ctx.plan.workdir);
    });
    const pid = await startSshdProxy({
      sshd: p.sshd,
      config: p.config,
      workdir: ctx.plan.workdir,
      hostKey: vm0.key,
      authorizedKey: await proxyAuthorizedKey(ctx.plan.workdir, vm0.key),
      user: p.user,
      address: gateway,
    });
    ctx.record.ipv6Proxy = { address: gateway, pid };
    // where ./ost.sh destroy kills it from (ost's own pid file is in the env dir)
    await publishSshdPid(ctx.record, pid);
  },
};

export const deployPhase: Phase = {
  id: 'deploy',
  title: (plan) =>
    `deploy scripts on ${plan.vms.filter((vm) => vm.vm.deployScripts.length > 0).length} VMs${plan.env.hostDeployScripts?.length ? `, then ${plan.env.hostDeployScripts.length} on the host` : ''}`,
  skip: (plan) => !plan.deploy,
  steps: (plan) => [
    ...plan.vms.flatMap((vm) =>
      vm.vm.deployScripts.map((s) => ({
        title: `${vm.name}: ${s.file} to bash -s over SSH (log ${path.join(plan.workdir, `deploy-${vm.name}.log`)})`,
      })),
    ),
    ...(plan.env.hostDeployScripts ?? []).map((s) => ({
      title: `on the host, in ${path.dirname(plan.env.file)}, with ${path.join(plan.workdir, 'env.sh')} sourced (log ${path.join(plan.workdir, 'deploy-host.log')})`,
      argv: [
        'bash',
        '-c',
        '. "$1" && exec bash "$2"',
        'ost-host-deploy',
        path.join(plan.workdir, 'env.sh'),
        s.file,
      ],
    })),
  ],
  async run(ctx) {
    const deploy = ctx.plan.env.vms.filter((vm) => vm.deployScripts.length > 0);
    await runDeployScripts(deploy, ctx.record.vms, ctx.plan.workdir, ctx.signal);
    // run with ost's rights: scripts only ost's user (and, through sudo, its invoker) can change
    await runHostDeployScripts(ctx.plan.env, ctx.plan.workdir, ctx.signal, ctx.plan.scriptOwners);
    ctx.record.deployed = true;
  },
};
