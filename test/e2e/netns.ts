// A network namespace with its own libvirtd and virtlogd, so tests create bridges, NAT and VMs that no
// one outside the namespace can reach, and remove all of it afterwards.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type ExecOptions, run } from '../../src/core/exec.js';
import { DOMAIN_NAME, NETWORK_NAME } from '../../src/launcher/env-dir/discover.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function pidsOf(name: string): Promise<number[]> {
  const r = await run('pgrep', ['-r', 'R,S,D', '-x', name], { allowFailure: true });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

export class LibvirtNetns {
  /** The daemons this namespace started, by pid (read from their pid files right after they started). */
  private pids: number[] = [];
  private configDir?: string;

  private constructor(readonly name: string) {}

  /**
   * Create the namespace and start virtlogd + libvirtd inside it; fails if a libvirtd already runs.
   * `config`: libvirtd.conf settings (the daemon then reads only these, `libvirtd -f`), e.g. to let a
   * group connect without polkit.
   */
  static async start(name: string, config?: Record<string, string>): Promise<LibvirtNetns> {
    const running = await pidsOf('libvirtd');
    if (running.length > 0) {
      throw new Error(
        `a libvirtd is already running (pid ${running.join(', ')}); the tests start their own inside a network ` +
          'namespace and cannot share /run/libvirt with it: stop it first (systemctl stop libvirtd)',
      );
    }
    await run('ip', ['netns', 'add', name]);
    const ns = new LibvirtNetns(name);
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    if ((await pidsOf('virtlogd')).length === 0) {
      await ns.exec(['virtlogd', '-d']);
      ns.pids.push(Number(readFileSync('/run/virtlogd.pid', 'utf8').trim()));
    }
    const args = ['libvirtd', '-d'];
    if (config) {
      ns.configDir = mkdtempSync(path.join(tmpdir(), 'ost-e2e-libvirtd-'));
      const file = path.join(ns.configDir, 'libvirtd.conf');
      writeFileSync(
        file,
        Object.entries(config)
          .map(([k, v]) => `${k} = ${JSON.stringify(v)}\n`)
          .join(''),
      );
      args.push('-f', file);
    }
    await ns.exec(args);
    for (let i = 0; i < 60; i++) {
      const r = await run('virsh', ['-c', 'qemu:///system', 'version'], { allowFailure: true });
      if (r.exitCode === 0) {
        ns.pids.unshift(Number(readFileSync('/run/libvirtd.pid', 'utf8').trim()));
        return ns;
      }
      await sleep(500);
    }
    // not answering: stop what this call started before giving up
    if (existsSync('/run/libvirtd.pid'))
      ns.pids.unshift(Number(readFileSync('/run/libvirtd.pid', 'utf8').trim()));
    await ns.stop();
    throw new Error('libvirtd in the test namespace did not answer within 30s');
  }

  /** Run a command inside the namespace. */
  exec(argv: string[], opts: ExecOptions = {}) {
    return run('ip', ['netns', 'exec', this.name, ...argv], opts);
  }

  /**
   * Run a command with only the network namespace entered (`nsenter --net`): in the host's mount namespace,
   * so a namespace an isolated env makes is seen by every process (`ip netns exec` gives one of its own).
   */
  enter(argv: string[], opts: ExecOptions = {}) {
    return run('nsenter', [`--net=/run/netns/${this.name}`, ...argv], opts);
  }

  /** Names of the libvirt domains (`<id>-ost-…`) or networks (`ost<id>-<N>`) of ost envs. */
  async ostObjects(kind: 'domain' | 'network'): Promise<string[]> {
    const args = kind === 'domain' ? ['list', '--all', '--name'] : ['net-list', '--all', '--name'];
    const r = await run('virsh', ['-c', 'qemu:///system', '-q', ...args]);
    return r.stdout
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => (kind === 'domain' ? DOMAIN_NAME : NETWORK_NAME).test(l));
  }

  /** Destroy whatever ost objects remain, stop the daemons, delete the namespace. */
  async stop(): Promise<void> {
    for (const d of await this.ostObjects('domain').catch(() => []))
      await run('virsh', ['-c', 'qemu:///system', 'destroy', d], { allowFailure: true });
    for (const n of await this.ostObjects('network').catch(() => []))
      await run('virsh', ['-c', 'qemu:///system', 'net-destroy', n], { allowFailure: true });
    // only the daemons this namespace started, by the pids they had then (never another libvirtd)
    for (const p of this.pids) {
      try {
        process.kill(p, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    const alive = (p: number) => existsSync(`/proc/${p}`);
    for (let i = 0; i < 20 && this.pids.some(alive); i++) await sleep(250);
    await run('ip', ['netns', 'del', this.name], { allowFailure: true });
    if (this.configDir) rmSync(this.configDir, { recursive: true, force: true });
  }
}
