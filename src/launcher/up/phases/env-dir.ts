// The env dir phases: the dir itself (its existence is the claim on the id and, for OST suites, on the
// deployment dir), env.json and the env's SSH keys first (made fresh, or copied: makeKey); the files OST and ssh read once the addresses are
// known; and the last word, once everything is up: env.json's `up`, libvirt's metadata, the hand-over.

import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { InternalError } from '../../../core/errors.js';
import { atomicWriteFile } from '../../../core/fsutil.js';
import type { ProcessId } from '../../../core/process.js';
import { runArgv } from '../../../tools/run-tool.js';
import { generateEd25519Argv, publicKeyArgv } from '../../../tools/ssh-keygen.js';
import { virsh } from '../../../tools/virsh.js';
import { readCheckpointKey } from '../../checkpoint/ssh-keys.js';
import { suiteDistro } from '../../env/model.js';
import {
  createDeployment,
  harnessKeyOf,
  removeDeployment,
  setDeployedMarker,
} from '../../env-dir/deployment.js';
import { exportPackageLists } from '../../env-dir/ost-files.js';
import { writeOutputs } from '../../env-dir/outputs.js';
import type { EnvRecord, VmRecord } from '../../env-dir/record.js';
import { writeRecord } from '../../env-dir/record.js';
import { createWorkdir, removeWorkdir } from '../../env-dir/workdir.js';
import { metadataElement, OST_NS, OST_PREFIX, type OstMetadata } from '../../libvirt/render.js';
import { buildXml } from '../../libvirt/xml.js';
import { layoutOf, type UpContext } from '../context.js';
import type { Phase } from '../phase.js';
import type { UpPlan } from '../plan.js';
import type { KeySource } from '../plan-keys.js';

/** The env record as it starts: what the up is, nothing made yet. */
export function startingRecord(plan: UpPlan, owner: ProcessId, timings: Record<string, number>): EnvRecord {
  const { env } = plan;
  return {
    version: 1,
    id: plan.id,
    suite: env.suite,
    source: env.file,
    kind: env.kind,
    ostRepo: env.ostRepo,
    ipMode: plan.ipMode,
    distro: suiteDistro(env),
    status: 'starting',
    owner,
    created: new Date().toISOString(),
    uri: plan.uri,
    workdir: plan.workdir,
    deployment:
      plan.deployment && plan.deploymentOwner ? { dir: plan.deployment, ...plan.deploymentOwner } : undefined,
    overlayDir: plan.overlayDir,
    domainType: plan.domainType,
    networks: [],
    vms: [],
    custom: plan.customRequest && {
      repos: plan.customRequest.repos,
      install: plan.customRequest.install,
      layers: [...new Set(plan.vms.flatMap((vm) => (vm.custom ? [vm.custom.file] : [])))],
    },
    // started from deployed layers: deployed before this up, as the manifest says
    ...(plan.deployed
      ? { deployed: true, deployedFrom: { manifest: plan.deployed.manifest, key: plan.deployed.key } }
      : {}),
    timings,
  };
}

/** The metadata every network and domain of the env carries while it starts. */
export function startingMeta(plan: UpPlan, owner: ProcessId): OstMetadata {
  return {
    envId: plan.id,
    suite: plan.suite,
    workdir: plan.workdir,
    deployment: plan.deployment,
    overlayDir: plan.overlayDir,
    ownerPid: owner.pid,
    ownerStart: owner.start,
    state: 'starting',
  };
}

/**
 * An env's key in its `keys/` (0700): made fresh (ssh-keygen, ed25519) or copied private (0600, whoever
 * could read the original), with its public half beside it (`.pub`): the guests' SSH key credential.
 */
export async function makeKey(key: string, from: KeySource, id: string): Promise<void> {
  if (from.kind === 'fresh') {
    await runArgv(generateEd25519Argv(key, `ost-env-${id}`));
    await fs.chmod(key, 0o600);
    await fs.chmod(`${key}.pub`, 0o644);
    return;
  }
  // a checkpoint's key only as ost saved it (no link followed, ours, writable by nobody else)
  const bytes = from.why === 'checkpoint' ? await readCheckpointKey(from.file) : await fs.readFile(from.file);
  await atomicWriteFile(key, bytes, 0o600);
  // the public half as ssh-keygen derives it (a shipped key's .pub may be missing)
  await atomicWriteFile(`${key}.pub`, (await runArgv(publicKeyArgv(key))).stdout, 0o644);
}

export const envDirPhase: Phase = {
  id: 'envdir',
  untimed: true,
  title: (plan) => `env dir ${plan.workdir}${plan.deployment ? `, deployment dir ${plan.deployment}` : ''}`,
  steps: (plan) => [
    {
      title: `mkdir ${plan.workdir} (refused when it exists) with .ost-env, logs/, images/, libvirt/, keys/`,
    },
    { title: `write ${path.join(plan.workdir, 'env.json')}` },
    ...[...new Map(plan.vms.map((vm) => [vm.key, vm.keyFrom]))].map(([key, from]) => ({
      title:
        from.kind === 'fresh'
          ? `a new ed25519 key pair ${key} (0600) and ${key}.pub`
          : `copy ${from.file} to ${key} (0600; ${from.why === 'checkpoint' ? "the checkpoint's key" : from.why === 'given' ? '--key' : "the image set's key"}), its public half to ${key}.pub`,
      argv: from.kind === 'fresh' ? generateEd25519Argv(key, `ost-env-${plan.id}`) : undefined,
    })),
    ...(plan.deployment
      ? [
          {
            title: `as uid ${plan.deploymentOwner?.uid}: mkdir ${plan.deployment} (refused when it exists) with .ost-env, keys/ (the keys' copies, 0600) and logs -> ${path.join(plan.workdir, 'logs')}`,
          },
        ]
      : []),
  ],
  async run(ctx) {
    const { plan } = ctx;
    await createWorkdir(ctx.stateRoot, plan.id, ctx.record.owner);
    ctx.undo.add(`env dir ${plan.workdir}`, async () => {
      await removeWorkdir(ctx.stateRoot, plan.id);
    });
    await writeRecord(ctx.record);
    if (plan.keyNotice) ctx.reporter({ type: 'info', message: plan.keyNotice });
    const keys = new Map(plan.vms.map((vm) => [vm.key, vm.keyFrom]));
    for (const [key, from] of keys) await makeKey(key, from, plan.id);
    if (!plan.deployment) return;
    ctx.undo.add(`deployment dir ${plan.deployment}`, async () => {
      await removeDeployment(plan.deployment, plan.id);
    });
    await createDeployment(
      ctx.record,
      ctx.record.owner,
      [...keys.keys()].map((key) => ({ from: key, to: harnessKeyOf(plan.deployment as string, key) })),
    );
  },
};

/** Each VM's record: its place in the layout, its image and chain, its disks and files. */
function vmRecords(ctx: UpContext): VmRecord[] {
  const layout = layoutOf(ctx);
  return ctx.plan.vms.map((vm, i) => {
    const l = layout.vms[i];
    if (!l) throw new InternalError(`the layout has no VM ${vm.name}`);
    return {
      ...l,
      image: {
        ref: vm.image.ref,
        path: vm.image.path,
        package: vm.image.package,
        chain: vm.chain,
        var: vm.vm.imageVar,
        custom: vm.custom,
      },
      overlayBase: vm.overlayBase,
      overlay: vm.overlay,
      disks: vm.disks.map((d) => ({ name: d.name, path: d.path, size: d.size, format: d.format })),
      memoryMiB: vm.vm.memoryMiB,
      vcpus: vm.vm.vcpus,
      consoleLog: vm.consoleLog,
      key: vm.key,
      deployScripts: vm.vm.deployScripts.map((s) => s.name),
      timings: ctx.vmTimings.get(vm.name) ?? {},
    };
  });
}

export const filesPhase: Phase = {
  id: 'files',
  untimed: true,
  title: () => 'hosts, env.sh, inventory, ssh_config',
  steps: (plan) => [
    {
      title: `write env.json, hosts, env.sh, inventory and ssh_config in ${plan.workdir} once the addresses are known`,
    },
    ...(plan.deployment
      ? [{ title: `as uid ${plan.deploymentOwner?.uid}: write hosts and env.sh in ${plan.deployment}` }]
      : []),
    ...(plan.ostSuite
      ? [
          {
            title: `export the images' package lists to ${path.join(plan.env.ostRepo ?? '', 'exported-artifacts')}`,
          },
        ]
      : []),
  ],
  async run(ctx) {
    const r = ctx.record;
    r.vms = vmRecords(ctx);
    // as soon as addresses are known: a kept failed env is reachable
    await writeOutputs(r);
    if (ctx.plan.ostSuite) await exportPackageLists(r, ctx.plan.env.ostRepo as string);
  },
};

/** The `ost:env` element for `virsh metadata --set` (virsh adds the namespace and prefix itself). */
function metadataForSet(m: OstMetadata): string {
  const node = metadataElement(m);
  delete node[`@_xmlns:${OST_PREFIX}`];
  return buildXml({ env: node }).trim();
}

export const finishPhase: Phase = {
  id: 'finish',
  untimed: true,
  title: () => 'mark the env up',
  steps: () => [
    { title: `mark each domain's ost metadata state 'up' (virsh metadata --live), and env.json` },
  ],
  async run(ctx) {
    const r = ctx.record;
    // mark the env finished in libvirt too, so `ost gc` never takes it for a leftover
    await Promise.all(
      r.vms.map((vm) =>
        virsh(ctx.uri, [
          'metadata',
          vm.libvirtName,
          '--uri',
          OST_NS,
          '--key',
          OST_PREFIX,
          '--set',
          metadataForSet({ ...ctx.meta, vm: vm.name, roles: vm.roles, state: 'up' }),
          '--live',
        ]),
      ),
    );
    ctx.timings.total = Date.now() - ctx.started;
    ctx.timings.overhead = ctx.timings.total - (ctx.timings.ready ?? 0) - (ctx.timings.deploy ?? 0);
    r.status = 'up';
    // started from deployed layers: OST's pytest finds its `deployed` marker, as after its own deploy
    if (ctx.plan.deployed) await setDeployedMarker(r, true);
    await writeOutputs(r);
  },
};
