// core/exec's less common ways to start a process: descriptors handed to a command (flock locks the file
// we hold open), and a detached daemon that outlives us (the IPv6 proxy's sshd).
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run, startDetached } from '../../src/core/exec.js';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'ost-exec-'));

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); ) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('run with inheritFds', () => {
  it('gives the command our descriptor as its fd 3, and keeps stdout apart', async () => {
    const file = path.join(tmp(), 'out');
    const fd = openSync(file, 'w');
    try {
      const res = await run('sh', ['-c', 'echo to-fd3 >&3; echo to-stdout'], { inheritFds: [fd] });
      expect(res.stdout).toBe('to-stdout\n');
    } finally {
      closeSync(fd);
    }
    expect(readFileSync(file, 'utf8')).toBe('to-fd3\n');
  });
});

describe('startDetached', () => {
  it('runs in a session of its own, logs into the file and reports its exit', async () => {
    const log = path.join(tmp(), 'd.log');
    const p = await startDetached('sh', ['-c', 'echo started; exec sleep 30'], { logFile: log });
    expect(p.pid).toBeGreaterThan(0);
    expect(p.commandLine).toBe("sh -c 'echo started; exec sleep 30'");
    await until(() => readFileSync(log, 'utf8').includes('started'));
    // /proc/<pid>/stat field 6 is the session id: its own
    const stat = readFileSync(`/proc/${p.pid}/stat`, 'utf8');
    expect(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]).toBe(String(p.pid));
    expect(p.exitCode()).toBeUndefined();
    p.kill();
    await until(() => p.exitCode() !== undefined);
    expect(p.exitCode()).toBe(-1);
  });

  it('appends, and says -1 for a program that cannot start', async () => {
    const log = path.join(tmp(), 'd.log');
    const a = await startDetached('sh', ['-c', 'echo one; exit 3'], { logFile: log });
    await until(() => a.exitCode() !== undefined);
    expect(a.exitCode()).toBe(3);
    const b = await startDetached('sh', ['-c', 'echo two'], { logFile: log });
    await until(() => b.exitCode() !== undefined);
    expect(readFileSync(log, 'utf8')).toBe('one\ntwo\n');
    const c = await startDetached('/nonexistent/program', [], { logFile: log });
    await until(() => c.exitCode() !== undefined);
    expect(c.exitCode()).toBe(-1);
  });
});
