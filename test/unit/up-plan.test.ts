// ost up's request rules (all problems at once), its pure plan (mode, owners of every file, one overlay
// base per VM) and --dry-run (the plan printed, nothing made), on real qemu-img images in a temp dir.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/core/errors.js';
import type { StoredCheckpoint } from '../../src/launcher/checkpoint/store.js';
import { nextTop } from '../../src/launcher/checkpoint/take.js';
import { loadEnvironment } from '../../src/launcher/env/load.js';
import type { Environment } from '../../src/launcher/env/model.js';
import type { AppliedCustomLayer } from '../../src/launcher/env-dir/record.js';
import type { Identity } from '../../src/launcher/images/qemu-user.js';
import { Templates } from '../../src/launcher/libvirt/templates.js';
import { planOnly } from '../../src/launcher/up/dry-run.js';
import { type PlanInputs, planUp } from '../../src/launcher/up/plan.js';
import { checkUpRequest, requestProblems, willDeploy } from '../../src/launcher/up/request.js';
import { planInputs } from '../helpers/plan-inputs.js';
import { REPO_ROOT, tempTree } from '../helpers/sets.js';

const demo = () => loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'demo-suite');
const ostSuite = (): Environment => ({ ...demo(), kind: 'ost-json', ostRepo: '/home/u/ost' });
const QEMU: Identity = { name: 'libvirt-qemu', uid: 64055, gid: 104, groups: [] };

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('ost up request rules', () => {
  it('reports every broken rule at once, as one usage error', () => {
    const err = thrown(() =>
      checkUpRequest({
        env: demo(),
        ipv4Only: true,
        ipv6Only: true,
        isolated: true,
        wait: false,
        id: 'XYZ',
        customInstall: ['vdsm'],
      }),
    );
    expect(err).toBeInstanceOf(UsageError);
    const text = (err as UsageError).message;
    expect(text).toMatch(/^5 problems with the options of ost up:/);
    for (const part of [
      '--ipv4-only and --ipv6-only exclude each other',
      '--id XYZ: an env id is 8 lowercase hex digits',
      '--isolated starts a second env from a checkpoint: it needs --from',
      '--no-wait: suite demo-suite has deploy scripts',
      '--custom-install vdsm: installs from custom repos, and none is given',
    ])
      expect(text).toContain(part);
  });

  it('keeps the message and hint of a single problem as they were', () => {
    const err = thrown(() => checkUpRequest({ env: demo(), ipv4Only: true, ipv6Only: true }));
    expect((err as UsageError).message).toBe('--ipv4-only and --ipv6-only exclude each other');
    expect((err as UsageError).hint).toBe('give one of them, or neither for both families');
  });

  it('decides once whether the deploy scripts run: ost-env suites always, OST suites with --deploy, never --from', () => {
    expect(willDeploy(demo(), false)).toBe(true);
    expect(willDeploy(ostSuite(), false)).toBe(false);
    expect(willDeploy(ostSuite(), true)).toBe(true);
    expect(checkUpRequest({ env: demo() })).toEqual({ ipMode: 'dual', deploy: true });
    expect(checkUpRequest({ env: demo(), from: { name: 'ck' } }).deploy).toBe(false);
    expect(checkUpRequest({ env: ostSuite(), ipv6Only: true })).toEqual({ ipMode: 'ipv6', deploy: false });
    // --no-wait is fine for an OST suite whose scripts OST runs itself
    expect(requestProblems({ env: ostSuite(), wait: false })).toEqual([]);
  });

  it('knows the --from and --checkpoint-cache combinations', () => {
    const msgs = (r: Parameters<typeof requestProblems>[0]) => requestProblems(r).map((p) => p.message);
    expect(msgs({ env: demo(), from: { name: 'ck' }, checkpointCache: true })).toEqual([
      '--from and --checkpoint-cache exclude each other',
    ]);
    expect(msgs({ env: demo(), checkpointCache: true, customRepos: ['/r'], wait: false })).toHaveLength(2);
    expect(msgs({ env: demo(), from: { name: 'ck', envId: '0a0a0a0a' }, id: '0b0b0b0b' })).toEqual([
      '--id 0b0b0b0b: an env from checkpoint ck has the id of the env it was taken of, 0a0a0a0a',
    ]);
    // an isolated env from a checkpoint is a new env: its own id is fine
    expect(
      msgs({ env: demo(), from: { name: 'ck', envId: '0a0a0a0a' }, id: '0b0b0b0b', isolated: true }),
    ).toEqual([]);
  });
});

/**
 * Plan inputs over resolved images that need not exist (the plan reads nothing); images that read no SSH
 * key credential: the env logs in with the shipped key (ssh-keys.test.ts: the rest).
 */
const inputs = (env: Environment, over: Partial<PlanInputs> = {}): PlanInputs =>
  planInputs(
    env,
    { below: ['/usr/share/ost-images/debian12-base.qcow2'], reservePerVmBytes: 2 ** 30 },
    { qemu: QEMU, ...over },
  );

describe('the plan of an up', () => {
  it('names every file with the uid that owns it once up: root gives guest disks to qemu (0600)', () => {
    const plan = planUp(inputs(demo()));
    expect(plan.mode).toBe('boot');
    expect(plan.workdir).toBe('/run/ost/envs/0a1b2c3d');
    const owner = (p: string) => plan.paths.find((f) => f.path === p);
    expect(owner('/dev/shm/ost/0a1b2c3d/engine.qcow2')).toMatchObject({ uid: 64055, gid: 104, mode: 0o600 });
    expect(owner('/run/ost/envs/0a1b2c3d/keys/debian12_id_rsa')).toMatchObject({ uid: 0, mode: 0o600 });
    expect(owner('/dev/shm/ost/0a1b2c3d')).toMatchObject({ uid: 0, gid: 104, mode: 0o750 });
    // every VM file in the plan is listed, once
    const listed = new Set(plan.paths.map((f) => f.path));
    expect(listed.size).toBe(plan.paths.length);
    for (const vm of plan.vms)
      for (const f of [vm.overlay, vm.key, vm.consoleLog, vm.domainXml, ...vm.disks.map((d) => d.path)])
        expect(listed.has(f), f).toBe(true);
  });

  it("keeps root's files in its own env dir; an OST deployment dir and what OST reads there are its owner's; others share disks with qemu (0660)", () => {
    const env = ostSuite();
    env.vms[0]?.disks.push({ name: 'sda', size: '1G', sizeBytes: 2 ** 30, format: 'raw' });
    const d = '/home/u/ost/deployment';
    const plan = planUp(inputs(env, { deployment: d, deploymentOwner: { uid: 1000, gid: 1000 } }));
    // root's env dir is ost's own, wherever the deployment dir is
    expect(plan.workdir).toBe('/run/ost/envs/0a1b2c3d');
    expect(plan.deployment).toBe(d);
    expect(plan.disksDir).toBe('/dev/shm/ost/0a1b2c3d');
    const owner = (p: string) => plan.paths.find((f) => f.path === p);
    // everything under the deployment dir is the owner's; nothing else is
    const inDeployment = plan.paths.filter((f) => f.path === d || f.path.startsWith(`${d}/`));
    expect(inDeployment.map((f) => f.path).sort()).toEqual(
      [
        d,
        `${d}/.ost-env`,
        `${d}/logs`,
        `${d}/keys`,
        `${d}/keys/debian12_id_rsa`,
        `${d}/keys/debian12_id_rsa.pub`,
        `${d}/hosts`,
        `${d}/env.sh`,
      ].sort(),
    );
    for (const f of inDeployment) expect(f.uid, f.path).toBe(1000);
    for (const f of plan.paths.filter((x) => !inDeployment.includes(x)))
      expect([0, 64055], f.path).toContain(f.uid);
    expect(owner('/run/ost/envs/0a1b2c3d')).toMatchObject({ kind: 'dir', uid: 0, mode: 0o711 });
    expect(owner('/run/ost/envs/0a1b2c3d/keys')).toMatchObject({ uid: 0, mode: 0o700 });
    expect(owner('/dev/shm/ost/0a1b2c3d/engine-sda.raw')).toMatchObject({ uid: 64055, mode: 0o600 });
    // the key the harness's hosts names is the owner's copy
    expect(plan.vms[0]?.key).toBe('/run/ost/envs/0a1b2c3d/keys/debian12_id_rsa');
    expect(plan.vms[0]?.harnessKey).toBe(`${d}/keys/debian12_id_rsa`);
    const user = planUp(inputs(demo(), { self: { uid: 1000, gid: 1000, pid: { pid: 1, start: '1' } } }));
    expect(user.paths.find((f) => f.path === user.vms[0]?.overlay)).toMatchObject({
      uid: 1000,
      gid: 104,
      mode: 0o660,
    });
  });

  it('puts nothing root writes later in the deployment dir: console logs, overlays, checkpoint and revert tops, domain XML', () => {
    // virtlogd (root) opens each console log with O_CREAT|O_APPEND and no O_NOFOLLOW; checkpoint and
    // revert make the next top beside each disk (qemu-img create follows links): a link the deployment
    // dir's owner plants there must never be on a path root uses
    const env = ostSuite();
    env.vms[0]?.disks.push({ name: 'sda', size: '1G', sizeBytes: 2 ** 30, format: 'raw' });
    const d = '/home/u/ost/deployment';
    const plan = planUp(inputs(env, { deployment: d, deploymentOwner: { uid: 1000, gid: 1000 } }));
    const inside = (f: string) => f === d || f.startsWith(`${d}/`);
    for (const vm of plan.vms) {
      const tops = [vm.overlay, ...vm.disks.map((x) => x.path)];
      const later = [
        vm.consoleLog,
        vm.domainXml,
        vm.key,
        ...tops,
        ...tops.map(nextTop),
        ...tops.map((t) => nextTop(nextTop(t))),
      ];
      for (const f of later) expect(inside(f), f).toBe(false);
      // root's own dirs: the env dir and the overlay dir
      for (const f of later)
        expect(f.startsWith(`${plan.workdir}/`) || f.startsWith(`${plan.overlayDir}/`), f).toBe(true);
    }
  });

  it("lists the SOCKS sshd's authorized key of an OST suite with --ipv6-only, readable by its user", () => {
    const d = '/home/u/ost/deployment';
    const at = (ipMode: 'ipv6' | 'dual') =>
      planUp(inputs(ostSuite(), { ipMode, deployment: d, deploymentOwner: { uid: 1000, gid: 1000 } })).paths;
    const six = at('ipv6');
    expect(six.find((f) => f.path === '/run/ost/envs/0a1b2c3d/proxy')).toMatchObject({ uid: 0, mode: 0o755 });
    expect(six.find((f) => f.path === '/run/ost/envs/0a1b2c3d/proxy/authorized_keys')).toMatchObject({
      uid: 0,
      mode: 0o644,
    });
    expect(at('dual').some((f) => f.path.includes('/proxy'))).toBe(false);
  });

  it('decides each overlay base once: the custom layer when the image has one, else the image', () => {
    const layer: AppliedCustomLayer = {
      file: '/var/cache/ost/layers/k/layer.qcow2',
      key: 'k',
      built: true,
      repos: [],
      packages: [],
    };
    const plan = planUp(inputs(demo(), { custom: new Map([['debian12-host-installed', layer]]) }));
    const [engine, host] = plan.vms;
    expect(engine?.overlayBase).toBe('/usr/share/ost-images/debian12-engine-installed.qcow2');
    expect(host?.overlayBase).toBe(layer.file);
    expect(host?.chain[0]).toBe(layer.file);
  });

  it('restores from a checkpoint under its env id and subnets; isolated, in a mode of its own', () => {
    const env = demo();
    const ck = {
      name: 'ck',
      dir: '/var/lib/ost/checkpoints/ck',
      sizeBytes: 0,
      record: {
        env: {
          id: '0f0f0f0f',
          networks: [
            { name: 'management', subnet: 211 },
            { name: 'storage', subnet: 212 },
          ],
        },
        vms: env.vms.map((vm) => ({ name: vm.name, disks: [], memory: 'm', xml: 'x' })),
      },
    } as unknown as StoredCheckpoint;
    const plan = planUp(inputs(env, { from: ck, id: '0f0f0f0f' }));
    expect(plan.mode).toBe('restore');
    expect(plan.networks).toEqual([
      { name: 'management', fixed: '192.168.211' },
      { name: 'storage', fixed: '192.168.212' },
    ]);
    expect(planUp(inputs(env, { from: ck, isolated: true })).mode).toBe('isolated-restore');
  });
});

describe('ost up --dry-run', () => {
  it('prints the phases with their commands and every file with its owner, and makes nothing', async () => {
    const dir = tempTree({});
    chmodSync(dir, 0o755); // qemu must reach the images
    const img = (f: string, backing?: string) =>
      execFileSync('qemu-img', [
        'create',
        '-q',
        '-f',
        'qcow2',
        ...(backing ? ['-F', 'qcow2', '-b', backing] : []),
        path.join(dir, f),
        '64M',
      ]);
    img('debian12-base.qcow2');
    img('debian12-engine-installed.qcow2', 'debian12-base.qcow2');
    img('debian12-host-installed.qcow2', 'debian12-base.qcow2');
    writeFileSync(path.join(dir, 'debian12_id_rsa'), 'not a key');
    const state = path.join(dir, 'state');
    const overlays = path.join(dir, 'overlays');
    const { plan, text } = await planOnly({
      env: demo(),
      id: '0a1b2c3d',
      uri: 'qemu:///system',
      stateRoot: state,
      overlays: { root: overlays, fallback: overlays, reservePerVmBytes: 1 },
      templates: new Templates(),
      images: { imagesDir: dir },
      timeoutMs: 1000,
      reporter: () => {},
    });
    expect(plan.vms.map((v) => v.overlayBase)).toEqual([
      path.join(dir, 'debian12-engine-installed.qcow2'),
      path.join(dir, 'debian12-host-installed.qcow2'),
    ]);
    expect(text).toContain(
      `$ qemu-img create -q -f qcow2 -F qcow2 -b ${dir}/debian12-engine-installed.qcow2 ${overlays}/0a1b2c3d/engine.qcow2`,
    );
    expect(text).toContain(
      `$ virsh -c qemu:///system -q create ${state}/envs/0a1b2c3d/libvirt/domain-host-0.xml`,
    );
    expect(text).toContain('deploy scripts on 2 VMs:');
    expect(text).toMatch(new RegExp(`file +uid 0 +0600 ${state}/envs/0a1b2c3d/keys/debian12_id_rsa`));
    expect(existsSync(state)).toBe(false);
    expect(existsSync(overlays)).toBe(false);
  });
});
