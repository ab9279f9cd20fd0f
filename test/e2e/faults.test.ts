// Fault injection and races, no VM. Publishing: ost's publish killed with -9 during an RPM copy, right
// before and right after the repodata swap, and right after the set record (OST_FAULT_PAUSE stops it
// exactly there); after each kill the repository must still serve a complete set — every file its
// metadata names exists and dnf installs the leaf — and the next publish must complete and leave no temp
// file. Locks: 40 processes on one lock get in strictly one at a time. Real rpmbuild, createrepo_c, dnf.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageSet } from '../../src/builder/plan/model.js';
import { publishSet } from '../../src/builder/repo/publish.js';
import type { PackedRpm } from '../../src/builder/rpm/rpm-file.js';
import { run } from '../../src/core/exec.js';
import { tinyLayerRpm } from '../helpers/rpms.js';
import { REPO_ROOT } from '../helpers/sets.js';
import { ensureBuilt, isRoot } from './helpers.js';

const set = { distro: 'f' } as ImageSet;
let work = '';

/** A base and a leaf that requires exactly that base, as ost's layer RPMs do. */
async function setRpms(release: string): Promise<PackedRpm[]> {
  const t = { distro: 'f', release, buildId: `b${release}`, size: 200_000 };
  return [
    await tinyLayerRpm(work, { ...t, layer: 'base' }),
    await tinyLayerRpm(work, { ...t, layer: 'leaf', requires: `ost-images-f-base = 1-${release}` }),
  ];
}

/** What the served metadata names, all of it: repodata files, then the RPMs its primary lists. */
function servedFiles(repo: string): string[] {
  const repomd = readFileSync(path.join(repo, 'repodata/repomd.xml'), 'utf8');
  const meta = [...repomd.matchAll(/<location href="([^"]+)"/g)].map((m) => m[1] as string);
  const primary = /<data type="primary">[\s\S]*?<location href="([^"]+)"/.exec(repomd)?.[1] as string;
  const xml = gunzipSync(readFileSync(path.join(repo, primary))).toString();
  return [...meta, ...[...xml.matchAll(/<location href="([^"]+)"/g)].map((m) => m[1] as string)];
}

async function dnfInstallLeaf(repo: string): Promise<number> {
  const root = mkdtempSync(path.join(work, 'root-'));
  const r = await run(
    'dnf',
    [
      '-y',
      '-q',
      `--installroot=${root}`,
      '--releasever=1',
      '--setopt=reposdir=/nonexistent',
      `--setopt=cachedir=${root}-cache`,
      '--disableplugin=*',
      '--nogpgcheck',
      `--repofrompath=f,file://${repo}`,
      'install',
      'ost-images-f-leaf',
    ],
    { allowFailure: true, timeoutMs: 10 * 60_000 },
  );
  rmSync(root, { recursive: true, force: true });
  rmSync(`${root}-cache`, { recursive: true, force: true });
  return r.exitCode;
}

describe.skipIf(!isRoot)('publish killed with -9 at each step (real rpmbuild, createrepo_c, dnf)', () => {
  beforeAll(() => {
    ensureBuilt();
    work = mkdtempSync('/var/tmp/ost-e2e-publish-faults-');
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('leaves a repository that serves a complete set, and the next publish completes cleanly', async () => {
    const repo = path.join(work, 'repo');
    await publishSet(set, await setRpms('1'), { repo, keep: 1 });
    const points = ['publish:copy', 'publish:before-swap', 'publish:after-swap', 'publish:after-record'];
    for (const [i, point] of points.entries()) {
      const rpms = await setRpms(String(i + 2));
      const mark = path.join(work, `mark-${i}`);
      const mod = path.join(REPO_ROOT, 'dist/builder/repo/publish.js');
      // armed as the CLI arms them: OST_FAULT_* read once (core/config.ts), handed to core/fault.ts
      const armed = `const f = await import(${JSON.stringify(path.join(REPO_ROOT, 'dist/core/fault.js'))}); const c = await import(${JSON.stringify(path.join(REPO_ROOT, 'dist/core/config.js'))}); f.setFaultPoints(c.readConfig(process.env).fault);`;
      const child = spawn(
        'node',
        [
          '--input-type=module',
          '-e',
          `${armed} const m = await import(${JSON.stringify(mod)}); await m.publishSet({ distro: 'f' }, ${JSON.stringify(rpms)}, { repo: ${JSON.stringify(repo)}, keep: 1 });`,
        ],
        { env: { ...process.env, OST_FAULT_PAUSE: point, OST_FAULT_MARK: mark }, stdio: 'ignore' },
      );
      const exited = new Promise((r) => child.on('exit', r));
      for (let t = 0; t < 600 && !existsSync(mark); t++) await new Promise((r) => setTimeout(r, 50));
      expect(existsSync(mark), `${point} was reached`).toBe(true);
      child.kill('SIGKILL');
      await exited;
      // still a complete set served: every file named exists, and the leaf installs with its base
      for (const f of servedFiles(repo)) expect(existsSync(path.join(repo, f)), `${point}: ${f}`).toBe(true);
      expect(await dnfInstallLeaf(repo), point).toBe(0);
      // the next publish (of the same set) completes, and leaves no temp file behind
      await publishSet(set, rpms, { repo, keep: 1 });
      expect(
        readdirSync(path.join(repo, 'Packages')).filter((f) => f.includes('.tmp-')),
        point,
      ).toEqual([]);
      expect(
        readdirSync(repo).filter((f) => f.startsWith('.repodata.new-')),
        point,
      ).toEqual([]);
      const served = servedFiles(repo).filter((f) => f.startsWith('Packages/'));
      expect(served.sort(), point).toEqual([
        `Packages/ost-images-f-base-1-${i + 2}.noarch.rpm`,
        `Packages/ost-images-f-leaf-1-${i + 2}.noarch.rpm`,
      ]);
    }
  }, 600_000);
});

describe.skipIf(!isRoot)('one lock, 40 processes', () => {
  it('lets them in strictly one at a time, each in turn', async () => {
    ensureBuilt();
    const dir = mkdtempSync('/var/tmp/ost-e2e-lock-');
    const log = path.join(dir, 'log');
    const mod = path.join(REPO_ROOT, 'dist/core/lock.js');
    const script = `
      import { appendFileSync } from 'node:fs';
      const m = await import(${JSON.stringify(mod)});
      const l = await m.acquireLock(${JSON.stringify(path.join(dir, 'lock'))}, 'taker', 120000);
      appendFileSync(${JSON.stringify(log)}, 'in ' + process.pid + '\\n');
      await new Promise((r) => setTimeout(r, 20));
      appendFileSync(${JSON.stringify(log)}, 'out ' + process.pid + '\\n');
      await l.release();`;
    await Promise.all(
      Array.from(
        { length: 40 },
        () =>
          new Promise<void>((resolve, reject) => {
            const c = spawn('node', ['--input-type=module', '-e', script], { stdio: 'ignore' });
            c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`taker exited ${code}`))));
          }),
      ),
    );
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(80);
    // in A, out A, in B, out B, …: never two inside
    for (let i = 0; i < lines.length; i += 2) {
      const [a, b] = [lines[i]?.split(' '), lines[i + 1]?.split(' ')];
      expect([a?.[0], b?.[0], a?.[1]]).toEqual(['in', 'out', b?.[1]]);
    }
    rmSync(dir, { recursive: true, force: true });
  }, 300_000);
});
