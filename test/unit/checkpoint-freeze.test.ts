// `ost checkpoint`'s freeze (issue 28): every VM is paused while its memory and disks are saved; an error or
// Ctrl-C (SIGINT, SIGTERM, SIGHUP) while they are paused resumes every one of them. virsh is a recording
// runner here (the argv it is given is checked against the real command's); the fault point is the real one.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { onInterrupt } from '../../src/core/cleanup.js';
import { InterruptedError } from '../../src/core/errors.js';
import type { ExecResult } from '../../src/core/exec.js';
import { setFaultPoints } from '../../src/core/fault.js';
import { freezeVms, type Tops, type VirshRun } from '../../src/launcher/checkpoint/take.js';
import type { VmRecord } from '../../src/launcher/env-dir/record.js';
import { virshArgv } from '../../src/tools/virsh.js';
import { tempTree } from '../helpers/sets.js';

const URI = 'qemu:///system';

function vm(name: string): VmRecord {
  return {
    name,
    libvirtName: `0a1b2c3d-ost-s-${name}`,
    overlay: `/dev/shm/ost/0a1b2c3d/${name}.qcow2`,
    disks: [
      { name: 'sda', path: `/run/ost/envs/0a1b2c3d/images/${name}-sda.raw`, size: '1G', format: 'raw' },
    ],
  } as VmRecord;
}

/** virsh as a recorder: every call's full argv; `fail` says which calls fail (exit 1). */
function recorder(fail: (args: readonly string[]) => boolean = () => false) {
  const calls: string[][] = [];
  const run: VirshRun = async (args) => {
    calls.push(virshArgv(URI, args));
    const bad = fail(args);
    return {
      exitCode: bad ? 1 : 0,
      stdout: args[0] === 'domstate' ? 'running\n' : '',
      stderr: bad ? 'error: no' : '',
    } as ExecResult;
  };
  return { calls, run, verbs: () => calls.map((c) => `${c[4]} ${c[5]}`) };
}

const vms = () => [vm('engine'), vm('host-0'), vm('host-1')];
const topsOf = (list: VmRecord[]): Tops =>
  new Map(
    list.map((v) => [
      v.name,
      [
        { dev: 'vda', top: v.overlay, next: v.overlay.replace('.qcow2', '.c1.qcow2') },
        {
          dev: 'sda',
          top: v.disks[0]?.path as string,
          next: v.disks[0]?.path.replace('.raw', '.c1.qcow2') as string,
        },
      ],
    ]),
  );

async function waitFor(file: string): Promise<void> {
  for (let i = 0; i < 200 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 25));
  expect(existsSync(file)).toBe(true);
}

afterEach(() => setFaultPoints({}));

describe("ost checkpoint's freeze", () => {
  it('pauses every VM, then one external snapshot each (memory and every disk), and leaves the resume to the caller', async () => {
    const list = vms();
    const v = recorder();
    const f = await freezeVms({
      vms: list,
      tops: topsOf(list),
      memDir: '/var/lib/ost/checkpoints/.c1.draft',
      run: v.run,
    });
    expect(v.verbs().slice(0, 3).sort()).toEqual(list.map((x) => `suspend ${x.libvirtName}`).sort());
    expect(v.calls[3]).toEqual([
      'virsh',
      '-c',
      URI,
      '-q',
      'snapshot-create-as',
      '0a1b2c3d-ost-s-engine',
      '--no-metadata',
      '--reuse-external',
      '--atomic',
      '--memspec',
      'file=/var/lib/ost/checkpoints/.c1.draft/engine.mem,snapshot=external',
      '--diskspec',
      'vda,snapshot=external,file=/dev/shm/ost/0a1b2c3d/engine.c1.qcow2',
      '--diskspec',
      'sda,snapshot=external,file=/run/ost/envs/0a1b2c3d/images/engine-sda.c1.qcow2',
    ]);
    expect(f.results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    expect(list[0]?.overlay).toBe('/dev/shm/ost/0a1b2c3d/engine.c1.qcow2');
    expect(v.verbs().filter((c) => c.startsWith('resume'))).toEqual([]);
    await f.resume();
    expect(
      v
        .verbs()
        .filter((c) => c.startsWith('resume'))
        .sort(),
    ).toEqual(list.map((x) => `resume ${x.libvirtName}`).sort());
  });

  it('Ctrl-C (the abort signal) at checkpoint:paused resumes every paused VM, and saves nothing', async () => {
    const dir = tempTree({});
    const mark = path.join(dir, 'mark');
    setFaultPoints({ pause: 'checkpoint:paused', mark });
    const list = vms();
    const v = recorder();
    const abort = new AbortController();
    const freezing = freezeVms({
      vms: list,
      tops: topsOf(list),
      memDir: dir,
      run: v.run,
      signal: abort.signal,
    });
    await waitFor(mark);
    expect(v.verbs().sort()).toEqual(list.map((x) => `suspend ${x.libvirtName}`).sort());
    abort.abort(new InterruptedError('by SIGINT'));
    await expect(freezing).rejects.toThrow(/interrupted: by SIGINT/);
    const after = v.verbs().slice(3);
    expect(after.sort()).toEqual(list.map((x) => `resume ${x.libvirtName}`).sort());
    expect(v.calls.slice(3).every((c) => c.length === 6)).toBe(true);
  });

  it('a VM that cannot be paused: the others, paused already, are resumed', async () => {
    const list = vms();
    const v = recorder((a) => a[0] === 'suspend' && a[1] === list[1]?.libvirtName);
    await expect(freezeVms({ vms: list, tops: topsOf(list), memDir: '/x', run: v.run })).rejects.toThrow(
      /cannot pause host-0: error: no/,
    );
    expect(
      v
        .verbs()
        .filter((c) => c.startsWith('resume'))
        .sort(),
    ).toEqual(list.map((x) => `resume ${x.libvirtName}`).sort());
    expect(v.verbs().some((c) => c.startsWith('snapshot'))).toBe(false);
  });
});

describe('interrupts', () => {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    it(`${sig} aborts gracefully first (an InterruptedError), a second one is the hard stop`, () => {
      const abort = new AbortController();
      let hard = 0;
      const off = onInterrupt(abort, () => {
        hard++;
      });
      try {
        process.emit(sig, sig);
        expect(abort.signal.aborted).toBe(true);
        expect(String(abort.signal.reason)).toMatch(new RegExp(`interrupted: by ${sig}`));
        process.emit(sig, sig);
        expect(hard).toBe(1);
      } finally {
        off();
      }
      expect(process.listenerCount(sig)).toBe(0);
    });
});
