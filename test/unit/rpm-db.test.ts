// Image resolution through the rpm database the install wrote, with the real tools: a layer RPM made by
// rpmbuild, a repo by createrepo_c, an installroot by `dnf --installroot` (which on Debian's rpm 4.18
// writes <root>/root/.rpmdb: `%_dbpath` is `~/.rpmdb`, per user), then resolveImages as root and, in a
// child process, as `nobody` (whose own rpm looks in /nonexistent/.rpmdb).
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/core/exec.js';
import type { EnvVm } from '../../src/launcher/env/model.js';
import { resolveImages } from '../../src/launcher/images/resolve.js';
import { type DbAnswer, dbHostPath, findRpmDbs, notInstalled } from '../../src/launcher/images/rpm-db.js';
import { createrepoArgv } from '../../src/tools/createrepo.js';
import { dnfInstallArgv } from '../../src/tools/dnf.js';
import { create } from '../../src/tools/qemu-img.js';
import { runArgv } from '../../src/tools/run-tool.js';
import { tinyLayerRpm } from '../helpers/rpms.js';
import { REPO_ROOT } from '../helpers/sets.js';

const isRoot = process.getuid?.() === 0;
const PKG = 'ost-images-debian12-base';
const rootId = { name: 'root', uid: 0, gid: 0, groups: [0] };
const vm: EnvVm = {
  name: 'engine',
  image: { kind: 'package', distro: 'debian12', layer: 'base' },
  memoryMiB: 512,
  vcpus: 1,
  nics: [{ name: 'eth0', network: 'management' }],
  disks: [],
  deployScripts: [],
  squashed: false,
};

// the child: resolveImages as whoever runs it, printing the image or the error as JSON
const PROBE = `
import { resolveImages } from ${JSON.stringify(path.join(REPO_ROOT, 'src/launcher/images/resolve.ts'))};
const [vm, opts] = JSON.parse(process.argv[2]);
try {
  const got = await resolveImages([vm], opts);
  console.log(JSON.stringify({ image: [...got.values()][0] }));
} catch (e) {
  console.log(JSON.stringify({ error: e.message }));
}
`;

let dir = '';
let repo = '';
let key = '';

/** resolveImages as `nobody` in a child process (vite-node runs the TypeScript sources). */
function resolveAsNobody(root?: string): {
  image?: { path: string; package?: { name: string } };
  error?: string;
} {
  const probe = path.join(dir, 'probe.ts');
  const r = spawnSync(
    'runuser',
    [
      '-u',
      'nobody',
      '--',
      path.join(REPO_ROOT, 'node_modules/.bin/vite-node'),
      probe,
      JSON.stringify([vm, { root, key, qemu: rootId }]),
    ],
    { encoding: 'utf8', cwd: dir },
  );
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) as string);
}

/** `dnf --installroot` as ost's own adapter runs it: the local repo only. */
async function dnfInstall(root: string, env: Record<string, string> = {}): Promise<void> {
  const argv = dnfInstallArgv(
    {
      installRoot: root,
      repos: { ost: `file://${repo}` },
      gpgcheck: false,
      cacheDir: path.join(dir, 'cache'),
    },
    [PKG],
  );
  await runArgv(argv, { env });
}

describe.runIf(isRoot)('the rpm database an install wrote (real rpmbuild, createrepo_c, dnf)', () => {
  beforeAll(async () => {
    dir = mkdtempSync('/tmp/ost-rpmdb-');
    // nobody must reach the installroot, the key and the probe, as a user reaches root's images
    chmodSync(dir, 0o755);
    repo = path.join(dir, 'repo');
    await create(path.join(dir, 'debian12-base.qcow2'), '64M');
    const rpm = await tinyLayerRpm(dir, {
      distro: 'debian12',
      layer: 'base',
      release: '202612070000',
      buildId: 'b1',
      file: { src: path.join(dir, 'debian12-base.qcow2'), name: 'debian12-base.qcow2' },
    });
    await run('mkdir', ['-p', repo]);
    await run('cp', [rpm.file, repo]);
    await runArgv(createrepoArgv({ repo, outputDir: repo }));
    key = path.join(dir, 'debian12_id_rsa');
    writeFileSync(key, 'not a real key\n', { mode: 0o644 });
    writeFileSync(path.join(dir, 'probe.ts'), PROBE, { mode: 0o644 });
  }, 120_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('finds the database dnf --installroot wrote, and resolves through it as root and as nobody', async () => {
    const root = path.join(dir, 'root');
    await dnfInstall(root);
    const search = await findRpmDbs(root);
    expect(search.readable.length).toBeGreaterThan(0);
    // on Debian's rpm: <root>/root/.rpmdb (root's %_dbpath inside the root), not <root>/var/lib/rpm
    for (const db of search.readable)
      expect(existsSync(path.join(dbHostPath(root, db.dbpath as string), 'rpmdb.sqlite'))).toBe(true);
    const qcow = path.join(root, 'usr/share/ost-images/debian12-base.qcow2');
    const asRoot = await resolveImages([vm], { root, key, qemu: rootId });
    expect([...asRoot.values()][0]).toMatchObject({ path: qcow, package: { name: PKG } });
    // nobody's own rpm looks in <root>/nonexistent/.rpmdb and said "not installed"
    const asNobody = resolveAsNobody(root);
    expect(asNobody.error).toBeUndefined();
    expect(asNobody.image).toMatchObject({ path: qcow, package: { name: PKG } });
  }, 120_000);

  it('prints a dnf install that makes the package found, by root and by nobody', async () => {
    const root = path.join(dir, 'hinted');
    const err = await resolveImages([vm], { root, key, qemu: rootId }).catch((e: unknown) => e as Error);
    const fix = /\n {2}fix: (.*)$/m.exec((err as Error).message)?.[1] as string;
    expect(fix).toBe(`dnf --installroot=${root} install ${PKG}`);
    expect(resolveAsNobody(root).error).toContain(`fix: sudo dnf --installroot=${root} install ${PKG}`);
    // the hint as given, with the repo to install from
    const [dnf, ...rest] = fix.split(' ');
    await runArgv([
      dnf as string,
      '-y',
      '-q',
      '--releasever=1',
      '--setopt=reposdir=/nonexistent',
      '--disableplugin=*',
      '--nogpgcheck',
      `--setopt=cachedir=${path.join(dir, 'cache')}`,
      `--repofrompath=ost,file://${repo}`,
      ...rest,
    ]);
    expect((await resolveImages([vm], { root, key, qemu: rootId })).size).toBe(1);
    expect(resolveAsNobody(root).image).toMatchObject({ package: { name: PKG } });
  }, 120_000);

  it('finds the database of a sudo dnf that kept the user HOME: <root>/<home>/.rpmdb', async () => {
    const root = path.join(dir, 'sudo-home');
    await dnfInstall(root, { HOME: '/nonexistent' });
    expect(existsSync(path.join(root, 'nonexistent/.rpmdb/rpmdb.sqlite'))).toBe(true);
    expect(resolveAsNobody(root).image).toMatchObject({ package: { name: PKG } });
  }, 120_000);

  it.runIf(existsSync('/root/.rpmdb/rpmdb.sqlite'))(
    "on a host whose rpm keeps root's database in /root: nobody is told why, and to use an installroot",
    () => {
      const msg = resolveAsNobody(undefined).error as string;
      expect(msg).toContain('not installed: ost-images-debian12-base');
      expect(msg).toMatch(/cannot read \/root\/\.rpmdb \(EACCES as nobody\)/);
      expect(msg).toContain(
        'fix: sudo dnf --installroot=/var/lib/ost-images install ost-images-debian12-base, then ost up --images-root /var/lib/ost-images',
      );
    },
    60_000,
  );
});

describe('the dnf install ost names for missing packages', () => {
  const answer = (root: string | undefined, perUser: boolean, found: boolean): DbAnswer => ({
    db: found ? { root, dbpath: '/root/.rpmdb' } : undefined,
    installed: [],
    missing: [PKG],
    search: { root, readable: [], unreadable: [], looked: ['/usr/lib/sysimage/rpm'], perUser },
  });
  const fix = (text: string) => /\n {2}fix: (.*)$/m.exec(text)?.[1];

  it('installs into the installroot (its own database), with sudo when ost is not root', () => {
    expect(fix(notInstalled([PKG], answer('/r', true, true), true))).toBe(
      `dnf --installroot=/r install ${PKG}`,
    );
    expect(fix(notInstalled([PKG], answer('/r', true, true), false))).toBe(
      `sudo dnf --installroot=/r install ${PKG}`,
    );
    expect(notInstalled([PKG], answer('/r', true, true), true)).toContain('  rpm database: /r/root/.rpmdb\n');
  });

  it("on the host: dnf install as root; a user's shared system database: sudo dnf install", () => {
    expect(fix(notInstalled([PKG], answer(undefined, true, false), true))).toBe(`dnf install ${PKG}`);
    expect(fix(notInstalled([PKG], answer(undefined, false, false), false))).toBe(`sudo dnf install ${PKG}`);
  });

  it("on the host, a user of a per-user rpm (Debian's): an installroot they can read", () => {
    expect(fix(notInstalled([PKG], answer(undefined, true, false), false))).toMatch(
      /^sudo dnf --installroot=\/var\/lib\/ost-images install ost-images-debian12-base, then ost up --images-root \/var\/lib\/ost-images/,
    );
  });
});
