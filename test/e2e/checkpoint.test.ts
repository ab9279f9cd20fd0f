// Checkpoints on real libvirt in a network namespace, on the shared debian12 set: demo-suite up (with
// --checkpoint-cache: booted and checkpointed, restored by the second such up), a file
// written in each VM, checkpoint, files changed, revert (files back, uptime goes on, clocks set), a new env
// from the checkpoint after down, a second one refused while the first holds the subnets, the store's
// guards (in use, names), a second env from the checkpoint beside the first (--isolated), kill -9 during a
// checkpoint and during a revert. (A bigger env — OST's 4-VM suite — is checkpointed, reverted and restored
// in ost-harness.test.ts.)
import { spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/core/exec.js';
import type { EnvRecord } from '../../src/launcher/env-dir/record.js';
import type { CacheOutcome } from '../../src/launcher/up/checkpoint-cache.js';
import { REPO_ROOT } from '../helpers/sets.js';
import { ensureBuilt, isRoot, OST } from './helpers.js';
import { LibvirtNetns } from './netns.js';
import { sharedImages } from './shared-images.js';

const MIN = 60_000;
const work = isRoot ? mkdtempSync('/var/tmp/ost-e2e-checkpoint-') : '/nonexistent';
let root = '';
const stateDir = path.join(work, 'state');
const checkpoints = path.join(work, 'checkpoints');
const overlayDir = `/dev/shm/ost-e2e-ck-${process.pid}`;
const env = { OST_STATE_DIR: stateDir, OST_OVERLAY_DIR: overlayDir, OST_CHECKPOINT_DIR: checkpoints };
let ns: LibvirtNetns;

async function ostNs(args: string[], timeoutMs = 20 * MIN) {
  const r = await ns.exec([OST, ...args], { allowFailure: true, env, cwd: REPO_ROOT, timeoutMs });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

/** ost with only the test's network namespace entered (an --isolated env's namespace is seen outside it). */
async function ostNet(args: string[], timeoutMs = 20 * MIN) {
  const r = await ns.enter([OST, ...args], { allowFailure: true, env, cwd: REPO_ROOT, timeoutMs });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

/** ssh to a VM by the env's ssh_config, from the test's namespace or an isolated env's own. */
async function sshF(r: EnvRecord, vm: string, command: string) {
  const argv = ['ssh', '-F', path.join(r.workdir, 'ssh_config'), vm, command];
  if (r.netns) return run('ip', ['netns', 'exec', r.netns, ...argv], { timeoutMs: 2 * MIN });
  return ns.exec(argv, { timeoutMs: 2 * MIN });
}

/** Per VM: the test file's content, the guest's uptime and its clock's offset from the host's (s). */
async function look(r: EnvRecord) {
  const out: Record<string, { file: string; uptime: number; offset: number }> = {};
  for (const vm of r.vms) {
    const before = Date.now() / 1000;
    const s = await sshF(r, vm.name, 'cat /root/ck-file; cut -d" " -f1 /proc/uptime; date +%s.%N');
    const after = Date.now() / 1000;
    const [file, uptime, now] = s.stdout.trim().split('\n');
    const guest = Number(now);
    // inside [before, after] is no offset at all; outside, how far
    const offset = guest < before ? guest - before : guest > after ? guest - after : 0;
    out[vm.name] = { file: file ?? '', uptime: Number(uptime), offset };
  }
  return out;
}

async function writeFiles(r: EnvRecord, text: string) {
  for (const vm of r.vms) await sshF(r, vm.name, `echo ${text}-${vm.name} > /root/ck-file; sync`);
}

/** Start `ost ARGS` in the namespace, stopped at fault point `point`; resolves once it is there. */
async function pausedAt(args: string[], point: string): Promise<number> {
  const mark = path.join(work, `fault-${point.replace(/\W/g, '-')}`);
  rmSync(mark, { force: true });
  const child = spawn('ip', ['netns', 'exec', ns.name, OST, ...args], {
    env: { ...process.env, ...env, OST_FAULT_PAUSE: point, OST_FAULT_MARK: mark },
    cwd: REPO_ROOT,
    stdio: 'ignore',
  });
  for (let i = 0; i < 1200 && !existsSync(mark); i++) await new Promise((r) => setTimeout(r, 100));
  expect(existsSync(mark), `ost ${args.join(' ')} did not reach ${point}`).toBe(true);
  const pid = Number(readFileSync(mark, 'utf8').split(' ')[1]);
  process.kill(pid, 'SIGKILL');
  await new Promise((r) => child.on('close', r));
  return pid;
}

/**
 * Start `ost ARGS` in the namespace, in a process group of its own as a terminal's foreground job is, stopped
 * at fault point `point` (with a resume file); Ctrl-C it as a terminal does — SIGINT to the whole group —
 * `when`: while it waits there, or half a second after it goes on (its commands running then get it too).
 */
async function interruptedAt(args: string[], point: string, when: 'paused' | 'running') {
  const mark = path.join(work, `fault-int-${point.replace(/\W/g, '-')}`);
  const resume = `${mark}.resume`;
  rmSync(mark, { force: true });
  rmSync(resume, { force: true });
  let stderr = '';
  const child = spawn('ip', ['netns', 'exec', ns.name, OST, ...args], {
    env: { ...process.env, ...env, OST_FAULT_PAUSE: point, OST_FAULT_MARK: mark, OST_FAULT_RESUME: resume },
    cwd: REPO_ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const closed = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  for (let i = 0; i < 1200 && !existsSync(mark); i++) await new Promise((r) => setTimeout(r, 100));
  expect(existsSync(mark), `ost ${args.join(' ')} did not reach ${point}`).toBe(true);
  const group = -(child.pid as number);
  if (when === 'running') writeFileSync(resume, '');
  await new Promise((r) => setTimeout(r, when === 'running' ? 500 : 1000));
  process.kill(group, 'SIGINT');
  if (when === 'paused') writeFileSync(resume, '');
  return { code: await closed, stderr };
}

describe.skipIf(!isRoot)('checkpoint, revert, up --from on real libvirt in a network namespace', () => {
  beforeAll(async () => {
    ensureBuilt();
    // qemu runs as the libvirt-qemu user: it must get through to the checkpoints under work/
    chmodSync(work, 0o755);
    root = (await sharedImages()).root;
    ns = await LibvirtNetns.start(`ost-e2e-ck-${process.pid}`);
  }, 120 * MIN);

  afterAll(async () => {
    await ns?.stop();
    rmSync(overlayDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }, 5 * MIN);

  let first: EnvRecord;
  let cacheCheckpoint = '';
  let atCheckpoint: Awaited<ReturnType<typeof look>>;

  it(
    'checkpoints a running demo-suite and reverts it in place: files as at the checkpoint, uptime goes on, clocks set',
    async () => {
      // --checkpoint-cache finds nothing for these images yet: it boots, deploys, and checkpoints for next time
      const u = await ostNs(['up', 'demo-suite', '--images-root', root, '--checkpoint-cache', '--json']);
      expect(u.code, u.stderr).toBe(0);
      const cached = JSON.parse(u.stdout) as EnvRecord & { checkpointCache: CacheOutcome };
      first = cached;
      expect(first.deployed).toBe(true);
      expect(cached.checkpointCache).toMatchObject({ hit: false, replaced: [] });
      expect(cached.checkpointCache.name).toMatch(/^cache-demo-suite-deployed-[0-9a-f]{12}$/);
      cacheCheckpoint = cached.checkpointCache.name as string;
      await writeFiles(first, 'checkpointed');
      atCheckpoint = await look(first);

      const c = await ostNs(['checkpoint', first.id, 'e2e-1', '--json']);
      expect(c.code, c.stderr).toBe(0);
      const ck = JSON.parse(c.stdout) as {
        dir: string;
        sizeBytes: number;
        record: { vms: { name: string }[]; sshKeys?: Record<string, string> };
      };
      expect(ck.dir).toBe(path.join(checkpoints, 'e2e-1'));
      // the env's own key goes with the checkpoint, its owner's alone: the guests authorize no other
      expect(ck.record.sshKeys).toEqual(
        Object.fromEntries(first.vms.map((vm) => [vm.name, 'keys/id_ed25519'])),
      );
      expect(statSync(path.join(ck.dir, 'keys')).mode & 0o777).toBe(0o700);
      expect(statSync(path.join(ck.dir, 'keys/id_ed25519')).mode & 0o777).toBe(0o600);
      expect(readFileSync(path.join(ck.dir, 'keys/id_ed25519'))).toEqual(
        readFileSync(first.vms[0]?.key as string),
      );
      expect(ck.record.vms.map((v) => v.name)).toEqual(first.vms.map((v) => v.name));
      // the store: root 0711, the checkpoint qemu's group only, memory files its owner's alone
      expect(statSync(checkpoints).mode & 0o777).toBe(0o711);
      expect(statSync(ck.dir).mode & 0o777).toBe(0o750);
      for (const vm of first.vms) {
        expect(statSync(path.join(ck.dir, `${vm.name}.mem`)).mode & 0o777).toBe(0o600);
        expect(statSync(path.join(ck.dir, `${vm.name}-vda.qcow2`)).mode & 0o777).toBe(0o440);
      }
      // the env ran on: the VMs answer, and a changed file stays changed until the revert
      await writeFiles(first, 'changed');
      const changed = await look(first);
      for (const vm of first.vms) expect(changed[vm.name]?.file).toBe(`changed-${vm.name}`);

      const l = await ostNs(['list', '--checkpoints']);
      expect(l.stdout).toMatch(/^e2e-1\s+demo-suite\s/m);

      const r = await ostNs(['revert', first.id, 'e2e-1', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const back = await look(first);
      for (const vm of first.vms) {
        const was = atCheckpoint[vm.name];
        const now = back[vm.name];
        expect(now?.file, vm.name).toBe(`checkpointed-${vm.name}`);
        // the guest did not boot again: its uptime goes on from where it was
        expect(now?.uptime ?? 0, vm.name).toBeGreaterThanOrEqual(was?.uptime ?? Number.POSITIVE_INFINITY);
        expect(Math.abs(now?.offset ?? 99), `${vm.name} clock`).toBeLessThan(2);
      }
      // the old chains are gone: one top per disk and the frozen file the first checkpoint made
      const files = readdirSync(path.join(overlayDir, first.id)).filter((f) => f.endsWith('.qcow2'));
      // (c1: the cache checkpoint's new tops, c2: e2e-1's, c3: the revert's)
      expect(files.sort()).toEqual(first.vms.map((vm) => `${vm.name}.c3.qcow2`).sort());
    },
    30 * MIN,
  );

  it(
    'starts a new env from the checkpoint after down; a second one is refused while the first holds the subnets; in use is not removable',
    async () => {
      const d = await ostNs(['down', first.id]);
      expect(d.code, d.stderr).toBe(0);
      const u = await ostNs(['up', 'demo-suite', '--images-root', root, '--from', 'e2e-1', '--json']);
      expect(u.code, u.stderr).toBe(0);
      const second = JSON.parse(u.stdout) as EnvRecord;
      // the env the checkpoint was taken of, again: id, names, addresses (libvirt keeps a restored VM's name)
      expect(second.id).toBe(first.id);
      expect(second.checkpoint?.name).toBe('e2e-1');
      // it logs in with the key of the env the checkpoint was taken of (its guests authorize that one)
      const ckKey = readFileSync(path.join(checkpoints, 'e2e-1', 'keys/id_ed25519'));
      for (const vm of second.vms) expect(readFileSync(vm.key)).toEqual(ckKey);
      expect(second.vms.map((v) => [v.libvirtName, v.address])).toEqual(
        first.vms.map((v) => [v.libvirtName, v.address]),
      );
      expect(await ns.ostObjects('domain')).toEqual(
        expect.arrayContaining(first.vms.map((v) => v.libvirtName)),
      );
      const now = await look(second);
      for (const vm of second.vms) {
        expect(now[vm.name]?.file).toBe(`checkpointed-${vm.name}`);
        expect(now[vm.name]?.uptime ?? 0).toBeGreaterThanOrEqual(atCheckpoint[vm.name]?.uptime ?? 1e9);
        expect(Math.abs(now[vm.name]?.offset ?? 99)).toBeLessThan(2);
      }
      // DNS names on the new network still answer from inside a guest
      const vm0 = second.vms[0] as EnvRecord['vms'][number];
      const vm1 = second.vms[1] as EnvRecord['vms'][number];
      const ping = await sshF(second, vm0.name, `getent ahostsv4 ${vm1.hostname}`);
      expect(ping.stdout).toContain(vm1.address);

      const again = await ostNs(['up', 'demo-suite', '--images-root', root, '--from', 'e2e-1']);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain(`is leased by environment ${second.id}`);
      expect(again.stderr).toContain('--isolated');
      const rm = await ostNs(['rm-checkpoint', 'e2e-1']);
      expect(rm.code).toBe(1);
      expect(rm.stderr).toContain(`environment ${second.id} runs on its disks`);

      // a second env from the same checkpoint beside the first: its networks in a namespace of its own
      const iso = await ostNet([
        'up',
        'demo-suite',
        '--images-root',
        root,
        '--from',
        'e2e-1',
        '--isolated',
        '--json',
      ]);
      expect(iso.code, iso.stderr).toBe(0);
      const third = JSON.parse(iso.stdout) as EnvRecord;
      expect(third.id).not.toBe(second.id);
      expect(third.netns).toBe(`ost-${third.id}`);
      for (const vm of third.vms) expect(readFileSync(vm.key)).toEqual(ckKey);
      // the same addresses (the guests keep theirs), other domain and network names
      expect(third.vms.map((v) => v.address)).toEqual(second.vms.map((v) => v.address));
      expect(await ns.ostObjects('domain')).toEqual(
        expect.arrayContaining([...second.vms, ...third.vms].map((v) => v.libvirtName)),
      );
      const copy = await look(third);
      for (const vm of third.vms) {
        expect(copy[vm.name]?.file).toBe(`checkpointed-${vm.name}`);
        expect(Math.abs(copy[vm.name]?.offset ?? 99)).toBeLessThan(2);
      }
      // no collision: each env's guests are its own
      await writeFiles(third, 'isolated');
      const firstNow = await look(second);
      for (const vm of second.vms) expect(firstNow[vm.name]?.file).toBe(`checkpointed-${vm.name}`);
      // the copy's dnsmasq answers DHCP and DNS as libvirt's did
      const t0 = third.vms[0] as EnvRecord['vms'][number];
      const t1 = third.vms[1] as EnvRecord['vms'][number];
      const names = await sshF(
        third,
        t0.name,
        `networkctl renew eth0 && sleep 2 && ip -4 -br addr show eth0; getent ahostsv4 ${t1.name}`,
      );
      expect(names.stdout).toContain(t0.address);
      expect(names.stdout).toContain(t1.address);
      // ost exec runs a command where the copy's guests are
      const ex = await ostNet([
        'exec',
        third.id,
        '--',
        'ssh',
        '-F',
        path.join(third.workdir, 'ssh_config'),
        t1.name,
        'cat /root/ck-file',
      ]);
      expect(ex.code, ex.stderr).toBe(0);
      // a revert of the copy restores under the copy's names again
      const rv = await ostNet(['revert', third.id, 'e2e-1']);
      expect(rv.code, rv.stderr).toBe(0);
      const reverted = await look(third);
      for (const vm of third.vms) expect(reverted[vm.name]?.file).toBe(`checkpointed-${vm.name}`);
      const d3 = await ostNet(['down', third.id]);
      expect(d3.code, d3.stderr).toBe(0);
      expect(existsSync(`/run/netns/ost-${third.id}`)).toBe(false);
      expect((await run('pgrep', ['-f', `netns/${third.id}/dnsmasq`], { allowFailure: true })).stdout).toBe(
        '',
      );

      const d2 = await ostNs(['down', second.id]);
      expect(d2.code, d2.stderr).toBe(0);
    },
    20 * MIN,
  );

  it(
    'kill -9 during a checkpoint and during a revert: no half checkpoint is used, gc cleans up, the env recovers',
    async () => {
      // the second --checkpoint-cache run of the suite on the same images restores, booting nothing
      const u = await ostNs(['up', 'demo-suite', '--images-root', root, '--checkpoint-cache', '--json']);
      expect(u.code, u.stderr).toBe(0);
      const r = JSON.parse(u.stdout) as EnvRecord & { checkpointCache: CacheOutcome };
      expect(r.checkpointCache).toMatchObject({ hit: true, name: cacheCheckpoint });
      expect(r.checkpoint?.name).toBe(cacheCheckpoint);
      expect(r.deployed).toBe(true);
      // restored, not booted
      for (const vm of r.vms) expect(vm.systemState, vm.name).toBe('restored');
      // killed with every VM paused, before any memory was saved
      await pausedAt(['checkpoint', r.id, 'e2e-2'], 'checkpoint:paused');
      // killed after the memory was saved, before the disks were copied
      await pausedAt(['checkpoint', r.id, 'e2e-2'], 'checkpoint:saved');
      const l = await ostNs(['list', '--checkpoints', '--json']);
      expect((JSON.parse(l.stdout) as { name: string }[]).map((c) => c.name)).toEqual([
        cacheCheckpoint,
        'e2e-1',
      ]);
      const fromHalf = await ostNs(['revert', r.id, 'e2e-2']);
      expect(fromHalf.code).toBe(1);
      expect(fromHalf.stderr).toContain('no checkpoint e2e-2');
      const gc = await ostNs(['gc', '--checkpoints', '--json']);
      expect(gc.code, gc.stderr).toBe(0);
      expect((JSON.parse(gc.stdout) as { partial: string[] }).partial).toHaveLength(2);
      expect(readdirSync(checkpoints).filter((f) => f.startsWith('.tmp-'))).toEqual([]);

      // a checkpoint after the killed ones works (the VMs a kill left paused run again)
      const c = await ostNs(['checkpoint', r.id, 'e2e-2']);
      expect(c.code, c.stderr).toBe(0);
      // --stop: the env stays paused after the checkpoint (complete, listed); it runs on once resumed
      const stopped = await ostNs(['checkpoint', r.id, 'e2e-3', '--stop']);
      expect(stopped.code, stopped.stderr).toBe(0);
      const domstate = async (vm: EnvRecord['vms'][number]) =>
        (await ns.exec(['virsh', '-c', 'qemu:///system', 'domstate', vm.libvirtName])).stdout.trim();
      for (const vm of r.vms) expect(await domstate(vm), vm.name).toBe('paused');
      const listed = await ostNs(['list', '--checkpoints', '--json']);
      expect((JSON.parse(listed.stdout) as { name: string }[]).map((x) => x.name)).toContain('e2e-3');
      for (const vm of r.vms) await ns.exec(['virsh', '-c', 'qemu:///system', 'resume', vm.libvirtName]);
      for (const vm of r.vms) expect(await domstate(vm), vm.name).toBe('running');
      await writeFiles(r, 'later');
      // killed with the VMs stopped, before any was restored: a revert again brings the env back
      await pausedAt(['revert', r.id, 'e2e-1'], 'revert:stopped');
      const again = await ostNs(['revert', r.id, 'e2e-1']);
      expect(again.code, again.stderr).toBe(0);
      const now = await look(r);
      for (const vm of r.vms) expect(now[vm.name]?.file).toBe(`checkpointed-${vm.name}`);
      // Ctrl-C before the VMs are stopped: the revert stops there and the env is as it was
      await writeFiles(r, 'later2');
      const early = await interruptedAt(['revert', r.id, 'e2e-1'], 'revert:locked', 'paused');
      expect(early.code, early.stderr).toBe(130);
      const kept = await look(r);
      for (const vm of r.vms) expect(kept[vm.name]?.file).toBe(`later2-${vm.name}`);
      // Ctrl-C once they are stopped, while it restores them: the revert finishes first (it says so; its
      // commands are out of the terminal's group), the VMs run at the checkpoint
      const late = await interruptedAt(['revert', r.id, 'e2e-1'], 'revert:stopped', 'running');
      expect(late.code, late.stderr).toBe(0);
      expect(late.stderr).toContain('finishes first');
      for (const vm of r.vms) expect(await domstate(vm), vm.name).toBe('running');
      const back = await look(r);
      for (const vm of r.vms) expect(back[vm.name]?.file).toBe(`checkpointed-${vm.name}`);

      const d = await ostNs(['down', r.id]);
      expect(d.code, d.stderr).toBe(0);
      for (const name of ['e2e-1', 'e2e-2', 'e2e-3', cacheCheckpoint]) {
        const rm = await ostNs(['rm-checkpoint', name]);
        expect(rm.code, rm.stderr).toBe(0);
      }
      expect(readdirSync(checkpoints).filter((f) => !f.startsWith('.lock'))).toEqual([]);
      expect(await ns.ostObjects('domain')).toEqual([]);
    },
    30 * MIN,
  );
});
