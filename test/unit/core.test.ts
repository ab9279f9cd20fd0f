import { spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cpioNewc } from '../../src/builder/layer-kinds/initrd.js';
import { ToolError } from '../../src/core/errors.js';
import { run, withoutTerminalSignals } from '../../src/core/exec.js';
import { atomicWriteFile, stableStringify } from '../../src/core/fsutil.js';
import { acquireLock } from '../../src/core/lock.js';
import { missingToolError, requireTools } from '../../src/core/require-tool.js';
import { asOwnerOf } from '../../src/core/safe-dir.js';
import { REPO_ROOT, tempTree } from '../helpers/sets.js';

describe('exec helper', () => {
  it('returns output of a successful command', async () => {
    const r = await run('sh', ['-c', 'echo out; echo err >&2']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toBe('err\n');
  });
  it('throws ToolError(exited) with the exit code and the output tail', async () => {
    const err = await run('sh', ['-c', 'for i in 1 2 3; do echo line$i; done; exit 3']).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ToolError);
    const te = err as ToolError;
    expect(te.kind).toBe('exited');
    expect(te.exitCode).toBe(3);
    expect(te.tail).toEqual(['line1', 'line2', 'line3']);
    expect(te.commandLine).toBe("sh -c 'for i in 1 2 3; do echo line$i; done; exit 3'");
  });
  it('reports spawn-failed for a missing program', async () => {
    const err = (await run('/nonexistent/prog', []).catch((e: unknown) => e)) as ToolError;
    expect(err.kind).toBe('spawn-failed');
  });
  it('reports timed-out and kills the command', async () => {
    const err = (await run('sleep', ['30'], { timeoutMs: 200 }).catch((e: unknown) => e)) as ToolError;
    expect(err.kind).toBe('timed-out');
    expect(err.durationMs).toBeLessThan(5000);
  });
  it('reports killed when aborted', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const err = (await run('sleep', ['30'], { signal: ac.signal }).catch((e: unknown) => e)) as ToolError;
    expect(err.kind).toBe('killed');
  });
  it('streams large stdout to a file without buffering it', async () => {
    const dir = tempTree({});
    const f = path.join(dir, 'big.bin');
    const r = await run('head', ['-c', String(64 * 2 ** 20), '/dev/zero'], { stdoutFile: f });
    expect(r.exitCode).toBe(0);
    expect(statSync(f).size).toBe(64 * 2 ** 20);
    const err = (await run('sh', ['-c', 'echo oops >&2; exit 4'], { stdoutFile: f }).catch(
      (e: unknown) => e,
    )) as ToolError;
    expect(err.kind).toBe('exited');
    expect(err.tail).toEqual(['oops']);
  });
  it('appends the full output to a log file', async () => {
    const dir = tempTree({});
    const log = path.join(dir, 'x.log');
    await run('sh', ['-c', 'echo hello'], { logFile: log });
    expect(readFileSync(log, 'utf8')).toMatch(/\$ sh -c 'echo hello'\nhello\n/);
  });
});

describe('commands out of the terminal signals (ost revert once its VMs are stopped)', () => {
  /** The process group of a process (`/proc/<pid>/stat`'s 5th field, after the name in parentheses). */
  const groupOf = (stat: string) => Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  const mine = () => groupOf(readFileSync('/proc/self/stat', 'utf8'));
  const childGroup = async () => groupOf((await run('sh', ['-c', 'cat /proc/$$/stat'])).stdout);

  it("a command started inside is in a group of its own, one outside in ost's", async () => {
    expect(await childGroup()).toBe(mine());
    const inside = await withoutTerminalSignals(() => childGroup());
    expect(inside).not.toBe(mine());
    // only inside: what comes after is in ost's group again
    expect(await childGroup()).toBe(mine());
  });

  it("a SIGINT to ost's group (a terminal's Ctrl-C) kills a command started outside, not one inside", async () => {
    // a node process in a group of its own stands in for ost in a terminal: it starts a command outside
    // and one inside, then its whole group gets SIGINT, as a Ctrl-C sends it
    const dir = tempTree({
      'probe.ts': [
        `import { run, withoutTerminalSignals } from '${path.join(REPO_ROOT, 'src/core/exec.ts')}';`,
        'process.on("SIGINT", () => {});',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a line of the script, literal
        "const sh = (text: string) => run('sh', ['-c', `sleep 2; echo ${text}`], { allowFailure: true });",
        "const outside = sh('outside').catch((e: Error) => ({ stdout: e.message.split(' after')[0] }));",
        "const inside = withoutTerminalSignals(() => sh('inside'));",
        "console.log('started');",
        'const [o, i] = await Promise.all([outside, inside]);',
        'console.log(JSON.stringify({ outside: o.stdout.trim(), inside: i.stdout.trim(), insideCode: i.exitCode }));',
        '',
      ].join('\n'),
    });
    const child = spawn(path.join(REPO_ROOT, 'node_modules/.bin/vite-node'), [path.join(dir, 'probe.ts')], {
      cwd: REPO_ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const closed = new Promise((r) => child.on('close', r));
    for (let i = 0; i < 300 && !out.includes('started'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(out).toContain('started');
    await new Promise((r) => setTimeout(r, 300));
    process.kill(-(child.pid as number), 'SIGINT');
    await closed;
    const result = JSON.parse(out.trim().split('\n').at(-1) as string);
    // the outside one was killed by the signal (exec reports it so); the inside one ran to its end
    expect(result).toEqual({ outside: 'killed', inside: 'inside', insideCode: 0 });
  }, 60_000);
});

describe('files and locks', () => {
  it('writes atomically with the requested mode and leaves no temp file', async () => {
    const dir = tempTree({});
    const f = path.join(dir, 'k');
    await atomicWriteFile(f, 'secret', 0o600);
    expect(readFileSync(f, 'utf8')).toBe('secret');
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(existsSync(`${f}.tmp`)).toBe(false);
  });
  it('sorts keys in stable JSON', () => {
    expect(stableStringify({ b: 1, a: [{ d: 1, c: 2 }], u: undefined })).toBe('{"a":[{"c":2,"d":1}],"b":1}');
  });
  it('refuses a lock while it is held, naming the holder; free again on release, and an empty file is free', async () => {
    const dir = tempTree({ '.lock': '' });
    const file = path.join(dir, '.lock');
    const l1 = await acquireLock(file, 'test');
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ pid: process.pid, purpose: 'test' });
    await expect(acquireLock(file, 'second')).rejects.toThrow(/locked by pid \d+ on .* \(test, since /);
    await l1.release();
    expect(readFileSync(file, 'utf8')).toBe('');
    const l2 = await acquireLock(file, 'again');
    await l2.release();
    await l2.release();
  });

  it('is freed by the kernel when its holder is killed (-9): no stale lock to take over', async () => {
    const dir = tempTree({});
    const file = path.join(dir, '.lock');
    // another process holds it (util-linux flock, as a second ost would)
    const holder = spawn('flock', ['-x', file, 'sleep', '60'], { stdio: 'ignore', detached: true });
    for (let i = 0; i < 100 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    await expect(acquireLock(file, 'mine')).rejects.toThrow(/locked by another process/);
    const waiting = acquireLock(file, 'waits', 10_000);
    // the holder and its child (which shares the locked open file): a process group killed at once
    process.kill(-(holder.pid as number), 'SIGKILL');
    const l = await waiting;
    expect(JSON.parse(readFileSync(file, 'utf8')).purpose).toBe('waits');
    await l.release();
  });

  it('serialises 40 takers strictly, and refuses a symlink in place of the lock file', async () => {
    const dir = tempTree({});
    const file = path.join(dir, '.lock');
    let inside = 0;
    let most = 0;
    let done = 0;
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const l = await acquireLock(file, `taker ${i}`, 60_000);
        inside++;
        most = Math.max(most, inside);
        await new Promise((r) => setTimeout(r, 2));
        inside--;
        done++;
        await l.release();
      }),
    );
    expect([done, most]).toEqual([40, 1]);
    const link = path.join(dir, 'link.lock');
    symlinkSync(path.join(dir, 'elsewhere'), link);
    await expect(acquireLock(link, 'x')).rejects.toThrow(/link\.lock is a symbolic link/);
    expect(existsSync(path.join(dir, 'elsewhere'))).toBe(false);
  }, 60_000);
});

describe('missing tools', () => {
  it('names the apt and the dnf package', () => {
    const e = missingToolError('virt-customize');
    expect(e.message).toBe('virt-customize is not installed');
    expect(e.hint).toBe(
      'install it with `apt-get install libguestfs-tools` (Debian/Ubuntu) or `dnf install guestfs-tools` (Fedora/EL)',
    );
  });
  it('reports several missing tools in one error', () => {
    expect(() => requireTools(['createrepo_c', 'rpmbuild', 'qemu-img'], ['/nonexistent'])).toThrow(
      expect.objectContaining({
        message: 'missing system tools: createrepo_c, rpmbuild, qemu-img',
        hint: 'install them with `apt-get install createrepo-c rpm qemu-utils` (Debian/Ubuntu) or `dnf install createrepo_c rpm-build qemu-img` (Fedora/EL)',
      }),
    );
    expect(() => requireTools(['sh' as never], ['/bin', '/usr/bin'])).not.toThrow();
  });
});

describe('initrd append', () => {
  it('writes a newc archive that cpio lists', async () => {
    const dir = tempTree({});
    const f = path.join(dir, 'a.cpio.gz');
    writeFileSync(f, cpioNewc([{ name: 'preseed.cfg', data: Buffer.from('d-i foo\n') }]));
    const r = await run('sh', ['-c', `zcat '${f}' | cpio -it 2>/dev/null`]);
    expect(r.stdout.trim()).toBe('preseed.cfg');
  });
});

describe('root writing in a dir another user owns', () => {
  const isRoot = process.geteuid?.() === 0;
  it.skipIf(!isRoot)(
    'writes as the owner: files are theirs, a link to a dir of root gets nothing, root comes back',
    async () => {
      const top = tempTree({ 'root-only/keep': 'root\n' });
      chmodSync(top, 0o755);
      chmodSync(path.join(top, 'root-only'), 0o755);
      const dir = path.join(top, 'users');
      mkdirSync(dir);
      chownSync(dir, 65534, 65534);
      await asOwnerOf(dir, () => atomicWriteFile(path.join(dir, 'hosts'), 'a\n'));
      expect([statSync(path.join(dir, 'hosts')).uid, process.geteuid?.()]).toEqual([65534, 0]);
      // the user swaps a folder of theirs for a link to a root dir: the write is refused, root's file stays
      symlinkSync(path.join(top, 'root-only'), path.join(dir, 'libvirt'));
      await expect(
        asOwnerOf(dir, () => atomicWriteFile(path.join(dir, 'libvirt/keep'), 'user\n')),
      ).rejects.toThrow(/EACCES/);
      expect(readFileSync(path.join(top, 'root-only/keep'), 'utf8')).toBe('root\n');
      expect([process.geteuid?.(), process.getegid?.()]).toEqual([0, 0]);
      // the dir itself a link: refused before anything is written
      symlinkSync(path.join(top, 'root-only'), path.join(top, 'swapped'));
      await expect(asOwnerOf(path.join(top, 'swapped'), async () => {})).rejects.toThrow(
        /is a symbolic link/,
      );
    },
  );
});
