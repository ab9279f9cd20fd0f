// Guest readiness (src/guest/ready.ts): the console marker watch, and a wait that stops at once when the
// VM is gone or paused, or at its deadline, with the console's tail. Ports are closed loopback ones.
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../src/builder/boot.js';
import { OstError } from '../../src/core/errors.js';
import { sleep } from '../../src/core/timers.js';
import {
  ConsoleWatch,
  LOST_TIMER_SIGN,
  PortWatch,
  PROBE_INTERVAL_MS,
  READY_MARKER,
  type ReadyTarget,
  STALL_SIGN,
  VmGoneError,
  VmStuckError,
  waitReady,
} from '../../src/guest/ready.js';
import { overlayBaseOf, type VmRecord } from '../../src/launcher/env-dir/record.js';
import { parseDomState } from '../../src/launcher/ready/domstate.js';
import { startAgain } from '../../src/launcher/ready/wait.js';
import { create, createOverlay } from '../../src/tools/qemu-img.js';
import { REPO_ROOT, tempTree } from '../helpers/sets.js';

async function target(console: string, more: Partial<ReadyTarget> = {}): Promise<ReadyTarget> {
  const dir = tempTree({ 'console.log': console });
  return {
    vm: 'engine',
    ssh: {
      host: '127.0.0.1',
      port: await freePort() /* bound and closed again: nothing listens */,
      user: 'root',
      privateKey: '/nonexistent',
    },
    consoleLog: path.join(dir, 'console.log'),
    poll: 'tcp',
    ...more,
  };
}

describe('the console readiness marker', () => {
  it('is seen when it is appended, even split across two writes, and not before the given offset', async () => {
    const dir = tempTree({ 'console.log': `old boot: ${READY_MARKER} 1234\r\n` });
    const file = path.join(dir, 'console.log');
    const watch = new ConsoleWatch(file, READY_MARKER, `old boot: ${READY_MARKER} 1234\r\n`.length);
    try {
      await sleep(300);
      expect(watch.seenAt).toBeUndefined();
      appendFileSync(file, `[  OK  ] Started ssh.service\r\n${READY_MARKER.slice(0, 5)}`);
      await sleep(300);
      expect(watch.seenAt).toBeUndefined();
      const t0 = Date.now();
      appendFileSync(file, `${READY_MARKER.slice(5)} 5f2c\r\n`);
      await watch.appeared;
      expect((watch.seenAt as number) - t0).toBeLessThan(500);
    } finally {
      watch.stop();
    }
  });

  it('counts further markers in the same reads, each appearance once, even one left in the carry', async () => {
    const dir = tempTree({ 'console.log': '' });
    const file = path.join(dir, 'console.log');
    const watch = new ConsoleWatch(file, READY_MARKER);
    const stalls = watch.also(STALL_SIGN, 3);
    const lost = watch.also(LOST_TIMER_SIGN);
    try {
      // the stall report ends within the last characters of a read: carried over, not counted again
      appendFileSync(file, `[ 24.1] rcu: INFO: ${STALL_SIGN}\n`);
      await sleep(300);
      appendFileSync(file, `[ 45.2] rcu: INFO: ${STALL_SIGN.slice(0, 9)}`);
      await sleep(300);
      appendFileSync(file, `${STALL_SIGN.slice(9)} on CPUs/tasks:\n`);
      await sleep(300);
      expect(stalls.seenAt).toBeUndefined();
      expect(lost.seenAt).toBeUndefined();
      appendFileSync(file, `rcu: rcu_preempt ${LOST_TIMER_SIGN} for 5255 jiffies!\n[ 66.3] ${STALL_SIGN}\n`);
      await Promise.all([stalls.appeared, lost.appeared]);
      expect(watch.seenAt).toBeUndefined();
    } finally {
      watch.stop();
    }
  });

  it('is found in a log that was recreated shorter, and in one that does not exist yet', async () => {
    const dir = tempTree({ 'console.log': 'x'.repeat(4096) });
    const file = path.join(dir, 'console.log');
    const watch = new ConsoleWatch(file, READY_MARKER, 4096);
    const missing = new ConsoleWatch(path.join(dir, 'later.log'), READY_MARKER);
    try {
      writeFileSync(file, `${READY_MARKER} 1\n`);
      writeFileSync(path.join(dir, 'later.log'), `boot\n${READY_MARKER} 2\n`);
      await Promise.all([watch.appeared, missing.appeared]);
    } finally {
      watch.stop();
      missing.stop();
    }
  });

  it('starts the SSH login at once, and a wait whose login keeps failing says the marker was seen', async () => {
    const t = await target('booting\r\n');
    setTimeout(() => appendFileSync(t.consoleLog, `${READY_MARKER} 0a1b\r\n`), 300);
    const err = await waitReady(t, 2500).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OstError);
    expect((err as Error).message).toMatch(
      /^VM engine \(127\.0\.0\.1\) was not ready within 3s \(its console said sshd is up 0\.[3-6]s in; last: ssh: .*refused/,
    );
  });
});

describe('the port 22 probe', () => {
  it('sees a port within one probe interval of it starting to listen, and stops probing then', async () => {
    const port = await freePort();
    const watch = new PortWatch('127.0.0.1', port);
    const server = createServer((c) => c.destroy());
    try {
      await sleep(3 * PROBE_INTERVAL_MS + 50);
      expect(watch.seenAt).toBeUndefined();
      const listening = await new Promise<number>((r) =>
        server.listen(port, '127.0.0.1', () => r(Date.now())),
      );
      await watch.appeared;
      expect(watch.seenAt! - listening).toBeLessThanOrEqual(PROBE_INTERVAL_MS + 50);
      const probes = watch.probes;
      expect(probes).toBeGreaterThanOrEqual(4);
      await sleep(2 * PROBE_INTERVAL_MS);
      expect(watch.probes).toBe(probes);
    } finally {
      watch.stop();
      server.close();
    }
  });
});

describe('waiting for a VM', () => {
  it('stops at once when the VM is gone (its qemu died), with the console tail and what qemu said', async () => {
    const t = await target('[    1.77] pci 0000:00:01.1: BAR 0\r\n', {
      state: async () => ({ kind: 'gone', detail: 'qemu: terminating on signal 15' }),
    });
    const t0 = Date.now();
    const err = await waitReady(t, 60_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmGoneError);
    expect((err as Error).message).toMatch(/VM engine stopped while booting/);
    expect((err as Error).message).toContain('qemu: qemu: terminating on signal 15');
    expect((err as Error).message).toContain('  | [    1.77] pci 0000:00:01.1: BAR 0');
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('stops a VM whose kernel lost a timer and stalls on (qemu TCG, 2 vCPUs, loaded host); one stall report is not that', async () => {
    // a real console: a 2-vCPU storage VM of the OST harness e2e that never got past udev in its initrd
    const stuck = readFileSync(path.join(REPO_ROOT, 'test/fixtures/launcher/console-stuck-tcg.log'), 'utf8');
    const t0 = Date.now();
    const err = await waitReady(await target(stuck), 60_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmStuckError);
    // a VmGoneError: the launcher starts it once more
    expect(err).toBeInstanceOf(VmGoneError);
    expect((err as Error).message).toMatch(
      /VM engine stalled while booting: its kernel says a timer never fired/,
    );
    expect(Date.now() - t0).toBeLessThan(10_000);
    // the same lines up to the first stall report only: a starved guest may go on from there
    const first = stuck.slice(0, stuck.indexOf(STALL_SIGN, stuck.indexOf(STALL_SIGN) + 1));
    expect(first).toContain(LOST_TIMER_SIGN);
    const err2 = await waitReady(await target(first), 1500).catch((e: unknown) => e);
    expect(err2).not.toBeInstanceOf(VmGoneError);
    expect((err2 as Error).message).toMatch(/was not ready within 2s/);
  });

  it('stops at once when qemu paused the VM (a full overlay disk), saying so', async () => {
    // virsh 9.0.0 `domstate --reason` outputs
    expect(parseDomState(0, 'paused (I/O error)\n\n')).toEqual({ kind: 'paused', reason: 'I/O error' });
    expect(parseDomState(0, 'running (booted)\n\n')).toEqual({ kind: 'running' });
    expect(parseDomState(0, 'shut off (destroyed)\n\n')).toEqual({ kind: 'gone' });
    expect(parseDomState(1, '')).toEqual({ kind: 'gone' });
    const t = await target('EXT4-fs error\r\n', {
      state: async () => parseDomState(0, 'paused (I/O error)\n'),
    });
    const err = await waitReady(t, 60_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OstError);
    expect(err).not.toBeInstanceOf(VmGoneError);
    expect((err as OstError).message).toMatch(/^VM engine was paused by qemu while booting \(I\/O error\)/);
    expect((err as OstError).hint).toMatch(/make room where its overlay lives/);
  });

  it('gives up at the deadline with the tail of the serial console, polling by TCP or by login', async () => {
    for (const poll of ['tcp', 'login'] as const) {
      const t = await target(
        'line 1\r\n\u001b[0;32mBooting\u001b[0m kernel\r\nKernel panic - not syncing\r\n',
        {
          poll,
        },
      );
      const err = await waitReady(t, 1500).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OstError);
      expect((err as Error).message).toMatch(
        poll === 'tcp'
          ? /VM engine \(127\.0\.0\.1\) was not ready within 2s \(no readiness marker on its console; last: port 22 not open yet\)/
          : /VM engine \(127\.0\.0\.1\) was not ready within 2s \(no readiness marker on its console; last: ssh: .*refused/,
      );
      expect((err as Error).message).toContain('  | Booting kernel\n  | Kernel panic - not syncing');
    }
  });
  it('at the deadline a login still waiting for the boot to end says so (the server never answers here)', async () => {
    // the first connection is held open without a word (ssh waits, as on a boot that never ends); the
    // next one (the wait asking for the boot's running jobs) is closed at once
    let connections = 0;
    const server = createServer((c) => {
      if (connections++ > 0) c.destroy();
    });
    const port = await new Promise<number>((r) =>
      server.listen(0, '127.0.0.1', () => r((server.address() as { port: number }).port)),
    );
    try {
      const t = await target(`${READY_MARKER} 0a1b\r\n`, { poll: 'login' });
      t.ssh.port = port;
      const err = await waitReady(t, 1500).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OstError);
      expect((err as Error).message).toMatch(
        /was not ready within 2s \(its console said sshd is up 0\.\ds in; last: the SSH login started 0s in was still waiting for systemctl is-system-running --wait\)/,
      );
      expect((err as Error).message).toContain(`  | ${READY_MARKER} 0a1b`);
    } finally {
      server.close();
    }
  }, 30_000);
});

describe('a second start of a VM whose qemu died', () => {
  it('puts the fresh overlay on the VM custom layer when it has one, on its image otherwise', async () => {
    const dir = tempTree({});
    const image = path.join(dir, 'image.qcow2');
    const layer = path.join(dir, 'layer.qcow2');
    await create(image, '64M');
    await createOverlay(layer, image);
    const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, name: 'me', groups: [] };
    const vm = (custom: boolean) =>
      ({
        name: 'host-0',
        overlay: path.join(dir, `overlay-${custom}.qcow2`),
        image: { ref: 'x', path: image, chain: [image], ...(custom ? { custom: { file: layer } } : {}) },
        timings: {},
      }) as unknown as VmRecord;
    for (const custom of [true, false]) {
      const v = vm(custom);
      writeFileSync(v.overlay, 'the first boot overlay');
      const started: string[] = [];
      await startAgain(
        v,
        { uri: 'qemu:///none', qemu: me, domainXml: (x) => `/xml/${x.name}` },
        async (xml) => started.push(xml),
      );
      expect(started).toEqual(['/xml/host-0']);
      expect(v.timings.restarts).toBe(1);
      const info = JSON.parse(
        execFileSync('qemu-img', ['info', '--output=json', '-U', v.overlay], { encoding: 'utf8' }),
      ) as { 'backing-filename': string };
      expect(info['backing-filename']).toBe(custom ? layer : image);
      expect(overlayBaseOf(v)).toBe(custom ? layer : image);
    }
  });
});
