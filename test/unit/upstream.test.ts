// Upstream-aware keys: repositories in the set file, the state read from them (a real HTTP server on
// loopback, file:// repositories on disk, captured Debian and RPM indexes), keys, plan reasons and argv.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildImages } from '../../src/builder/build.js';
import { BuildPaths, type LayerManifest, writeManifest } from '../../src/builder/build-dir.js';
import { computeKeys } from '../../src/builder/plan/keys.js';
import { loadImageSet } from '../../src/builder/plan/load.js';
import type { PackageRepo } from '../../src/builder/plan/model.js';
import { makePlan } from '../../src/builder/plan/plan.js';
import {
  describeChange,
  fetchState,
  indexUrls,
  releaseDate,
  repomdState,
  type UpstreamState,
} from '../../src/builder/upstream.js';
import { installCommand, layerSteps, repoSteps, upgradeCommand } from '../../src/tools/guest-steps.js';
import { REPO_ROOT, setProblems, tempTree } from '../helpers/sets.js';

const FIX = path.join(REPO_ROOT, 'test/fixtures');
const IN_RELEASE = readFileSync(path.join(FIX, 'upstream/bookworm-security-InRelease'));
const REPOMD = readFileSync(path.join(FIX, 'repo/repomd.xml'));
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

const deb = (over: Partial<PackageRepo> = {}): PackageRepo => ({
  name: 'security',
  kind: 'deb',
  url: 'http://deb.debian.org/debian-security',
  suite: 'bookworm-security',
  components: ['main'],
  trusted: false,
  watchOnly: false,
  ...over,
});

describe('repository indexes', () => {
  it('names the InRelease/Release of a suite, a flat repository (then its Packages), and repomd.xml', () => {
    expect(indexUrls(deb())).toEqual([
      'http://deb.debian.org/debian-security/dists/bookworm-security/InRelease',
      'http://deb.debian.org/debian-security/dists/bookworm-security/Release',
    ]);
    expect(indexUrls(deb({ url: 'file:///srv/local/', suite: './', components: undefined }))).toEqual([
      'file:///srv/local/InRelease',
      'file:///srv/local/Release',
      'file:///srv/local/Packages.xz',
      'file:///srv/local/Packages.gz',
      'file:///srv/local/Packages',
    ]);
    expect(indexUrls({ ...deb(), kind: 'rpm', url: 'https://m/9-stream/BaseOS/x86_64/os/' })).toEqual([
      'https://m/9-stream/BaseOS/x86_64/os/repodata/repomd.xml',
    ]);
  });

  it("reads the date of Debian's real bookworm-security InRelease and the revision of a createrepo_c repomd.xml", () => {
    expect(releaseDate(IN_RELEASE.toString())).toBe('2026-11-25T22:33:12.000Z');
    expect(releaseDate('Origin: x\n')).toBeUndefined();
    expect(repomdState(REPOMD.toString())).toEqual({
      revision: '1795635306',
      date: new Date(1795635306 * 1000).toISOString(),
    });
  });
});

describe('fetchState over HTTP (a real server on loopback) and from file://', () => {
  let server: Server;
  let base = '';
  const hits: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url === '/debian-security/dists/bookworm-security/InRelease') res.end(IN_RELEASE);
      else if (req.url === '/old/dists/stable/Release')
        res.end('Origin: old\nDate: Tue, 24 Nov 2026 08:00:00 UTC\n');
      else if (req.url === '/broken/dists/x/InRelease') {
        res.statusCode = 500;
        res.end('boom');
      } else if (req.url === '/el/repodata/repomd.xml') res.end(REPOMD);
      else {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('records the checksum and date of what it read, trying Release when there is no InRelease', async () => {
    const s = await fetchState(deb({ url: `${base}/debian-security/` }));
    expect(s).toEqual({
      name: 'security',
      source: `deb ${base}/debian-security/ bookworm-security`,
      index: `${base}/debian-security/dists/bookworm-security/InRelease`,
      sha256: sha(IN_RELEASE),
      date: '2026-11-25T22:33:12.000Z',
    });
    const old = await fetchState(deb({ name: 'old', url: `${base}/old`, suite: 'stable' }));
    expect(old.index).toBe(`${base}/old/dists/stable/Release`);
    expect(old.date).toBe('2026-11-24T08:00:00.000Z');
    const rpm = await fetchState({ ...deb(), name: 'el', kind: 'rpm', url: `${base}/el/` });
    expect([rpm.sha256, rpm.revision]).toEqual([sha(REPOMD), '1795635306']);
  });

  it('fails with the URL and the fix when a repository answers with an error or has no index', async () => {
    await expect(fetchState(deb({ url: `${base}/broken`, suite: 'x' }))).rejects.toThrow(
      `cannot read the state of deb ${base}/broken x: ${base}/broken/dists/x/InRelease: HTTP 500`,
    );
    await expect(fetchState(deb({ url: `${base}/nothing`, suite: 'x' }))).rejects.toThrow(
      /has no index: .*InRelease, .*Release not found/,
    );
  });

  it('reads a flat file:// repository without a Release file by its Packages index', async () => {
    const dir = tempTree({ Packages: 'Package: hello\nVersion: 1.0\n' });
    const s = await fetchState(
      deb({ name: 'local', url: `file://${dir}`, suite: './', components: undefined }),
    );
    expect(s.index).toBe(`file://${dir}/Packages`);
    // a Packages file carries no date: its mtime says when the repository changed
    expect(s.date).toBe(statSync(path.join(dir, 'Packages')).mtime.toISOString());
    expect(s.sha256).toBe(sha('Package: hello\nVersion: 1.0\n'));
  });
});

describe('why a layer rebuilds', () => {
  const st = (sha256: string, date: string): UpstreamState => ({
    name: 'bookworm-security',
    source: 'deb http://deb.debian.org/debian-security bookworm-security',
    index: 'http://deb.debian.org/debian-security/dists/bookworm-security/InRelease',
    sha256,
    date,
  });
  it('names the repository, its index and both dates', () => {
    expect(describeChange([st('a', '2026-11-27T01:00:00Z')], [st('b', '2026-11-28T01:00:00Z')])).toBe(
      'bookworm-security InRelease changed 2026-11-27 → 2026-11-28',
    );
    expect(describeChange([], [st('b', '2026-11-28T01:00:00Z')])).toBe('bookworm-security added');
    expect(describeChange(undefined, [st('b', '2026-11-28T01:00:00Z')])).toBe('no recorded upstream state');
  });
});

/** A debootstrap set with an upgrade layer on a local flat repository and a leaf. */
function nightlySet(extra = '') {
  const dir = tempTree({
    'local/Packages': 'Package: hello\nVersion: 1.0\n',
    's.sh': 'true\n',
    'set.yaml': `distro: t
family: deb
layers:
  - name: base
    debootstrap: { suite: bookworm, mirror: "http://deb.debian.org/debian" }
  - name: upgrade
    parent: base
    repos:
      - { name: local, url: "file:local", suite: ./, trusted: true }
    steps: [{ upgrade: true }]
  - name: leaf
    parent: upgrade
    steps: [{ install: [hello] }]
  - name: tweak
    parent: base
    steps: [{ script: s.sh }]
${extra}`,
  });
  return dir;
}

describe('repos: and refresh: in the set file', () => {
  it('defaults: derived layers that install follow their repositories, others and the base never refresh', () => {
    const dir = tempTree({
      'local/Packages': '',
      's.sh': 'true\n',
      'set.yaml': readFileSync(path.join(nightlySet(), 'set.yaml'), 'utf8').replace(
        'file:local',
        'file:missing',
      ),
    });
    expect(() => loadImageSet(path.join(dir, 'set.yaml'))).toThrow(
      /layers\[1\]\.repos\[0\]\.url: \/.*\/missing is not a directory on this host/,
    );
    const set = loadImageSet(path.join(nightlySet(), 'set.yaml'));
    expect(set.layers.map((l) => [l.name, l.refresh])).toEqual([
      ['base', 'never'],
      ['upgrade', 'upstream'],
      ['leaf', 'upstream'],
      ['tweak', 'never'],
    ]);
    expect(set.layers[1]?.steps).toEqual([{ kind: 'upgrade' }]);
  });

  it('refuses repositories that do not fit the family, a debootstrap base, or a name used twice in a chain', () => {
    const dir = tempTree({
      'set.yaml': `distro: t
family: deb
layers:
  - name: base
    debootstrap: { suite: bookworm, mirror: "http://m/debian" }
    repos: [{ name: a, url: "http://m/a", suite: x, components: [main] }]
  - name: l1
    parent: base
    repos:
      - { name: b, url: "http://m/b" }
      - { name: c, url: "http://m/c", suite: ./, components: [main] }
    steps: [{ run: "true" }]
  - name: l2
    parent: l1
    refresh: upstream
    repos: [{ name: b, url: "http://m/b2", suite: y, components: [main] }]
    steps: [{ run: "true" }]
`,
    });
    const err = setProblems(path.join(dir, 'set.yaml'));
    const text = err.message;
    expect(text).toContain('layers[0].repos: a debootstrap base uses its mirror and suite');
    expect(text).toContain('layers[1].repos[0].suite: missing; a Debian repository needs a suite');
    expect(text).toContain('layers[1].repos[1].components: a flat repository (suite ./) has no components');
    expect(text).toContain('layers[2].repos[0].name: repository b is already added by l1');
  });

  it('an install layer on a base with no known repositories refreshes daily; refresh: upstream there is an error', () => {
    const img = 'x';
    const dir = tempTree({
      'img.qcow2': img,
      'set.yaml': `distro: t
family: rpm
layers:
  - name: base
    import: { source: img.qcow2, sha256: ${sha(img)} }
  - name: a
    parent: base
    steps: [{ install: [vim] }]
  - name: b
    parent: base
    refresh: upstream
    steps: [{ install: [vim] }]
`,
    });
    expect(() => loadImageSet(path.join(dir, 'set.yaml'))).toThrow(
      /layers\[2\]\.refresh: upstream: no package repository is known for this layer/,
    );
    writeFileSync(
      path.join(dir, 'set.yaml'),
      readFileSync(path.join(dir, 'set.yaml'), 'utf8').replace('    refresh: upstream\n', ''),
    );
    expect(loadImageSet(path.join(dir, 'set.yaml')).layers.map((l) => l.refresh)).toEqual([
      'never',
      'daily',
      'daily',
    ]);
  });
});

describe('keys and plans with upstream state', () => {
  const state = (sha256: string, date: string): UpstreamState[] => [
    { name: 'bookworm', source: 'deb http://deb.debian.org/debian bookworm', index: 'i', sha256: 'b1', date },
    { name: 'local', source: 'deb file:///l ./', index: 'file:///l/Packages', sha256, date },
  ];

  it('a change upstream changes the keys of the layers that install from it, not the base or a script-only layer', async () => {
    const set = loadImageSet(path.join(nightlySet(), 'set.yaml'));
    const before = new Map([
      ['upgrade', state('p1', '2026-11-27T00:00:00Z')],
      ['leaf', state('p1', '2026-11-27T00:00:00Z')],
    ]);
    const after = new Map([
      ['upgrade', state('p2', '2026-11-28T00:00:00Z')],
      ['leaf', state('p2', '2026-11-28T00:00:00Z')],
    ]);
    const k1 = await computeKeys(set, { publicKey: 'k', upstream: before });
    const k2 = await computeKeys(set, { publicKey: 'k', upstream: after });
    // the date alone is not content: the same snapshot read again keeps the key
    const k3 = await computeKeys(set, {
      publicKey: 'k',
      upstream: new Map(
        [...before].map(([l, s]) => [l, s.map((x) => ({ ...x, date: '2030-01-01T00:00:00Z' }))]),
      ),
    });
    const changed = set.layers.filter((l) => k1.get(l.name) !== k2.get(l.name)).map((l) => l.name);
    expect(changed).toEqual(['upgrade', 'leaf']);
    expect(k3).toEqual(k1);
  });

  it('the plan says which repository moved on, and when', async () => {
    const dir = nightlySet();
    const set = loadImageSet(path.join(dir, 'set.yaml'));
    const paths = new BuildPaths(path.join(dir, 'out'), 't');
    const old = new Map([['upgrade', state('p1', '2026-11-27T00:00:00Z')]]);
    const now = new Map([['upgrade', state('p2', '2026-11-28T00:00:00Z')]]);
    const oldKeys = await computeKeys(set, { publicKey: 'k', upstream: old });
    mkdirSync(paths.out, { recursive: true });
    for (const l of ['base', 'upgrade']) {
      writeFileSync(paths.image(l), 'qcow2');
      await writeManifest(
        paths,
        manifest(l, oldKeys.get(l) as string, l === 'upgrade' ? old.get(l) : undefined),
      );
    }
    const plan = await makePlan(set, await computeKeys(set, { publicKey: 'k', upstream: now }), paths, {
      upstream: now,
    });
    expect(plan.map((e) => [e.layer.name, e.action])).toEqual([
      ['base', 'cached'],
      ['upgrade', 'build'],
      ['leaf', 'build'],
      ['tweak', 'build'],
    ]);
    expect(plan[1]?.reason).toBe('upstream: local Packages changed 2026-11-27 → 2026-11-28');
  });

  it('--offline keeps the state each layer recorded: nothing is read, nothing rebuilds', async () => {
    const dir = nightlySet();
    const set = loadImageSet(path.join(dir, 'set.yaml'));
    const out = path.join(dir, 'out');
    const paths = new BuildPaths(out, 't');
    const recorded = state('p1', '2026-11-27T00:00:00Z').map((s, i) =>
      i === 1 ? { ...s, source: `deb ${set.layers[1]?.repos[0]?.url} ./` } : s,
    );
    const upstream = new Map([
      ['upgrade', recorded],
      ['leaf', recorded],
    ]);
    mkdirSync(out, { recursive: true });
    writeFileSync(paths.publicKey(), 'ssh-ed25519 AAAA test\n');
    writeFileSync(paths.privateKey(), 'not a real key\n', { mode: 0o600 });
    const keys = await computeKeys(set, { publicKey: 'ssh-ed25519 AAAA test', upstream });
    for (const l of set.layers) {
      writeFileSync(paths.image(l.name), 'qcow2');
      await writeManifest(
        paths,
        manifest(l.name, keys.get(l.name) as string, upstream.get(l.name), l.parent),
      );
    }
    // the Debian mirror is never asked: --offline reads no repository
    const r = await buildImages(set, { out, dryRun: true, accel: 'tcg', offline: true });
    expect(r.plan.map((e) => [e.layer.name, e.action])).toEqual([
      ['base', 'cached'],
      ['upgrade', 'cached'],
      ['leaf', 'cached'],
      ['tweak', 'cached'],
    ]);
  });
});

function manifest(layer: string, key: string, upstream?: UpstreamState[], parent?: string): LayerManifest {
  return {
    distro: 't',
    layer,
    parent,
    key,
    buildId: `id-${layer}`,
    parentBuildId: parent ? `id-${parent}` : undefined,
    file: `t-${layer}.qcow2`,
    builtAt: '2026-11-27T00:00:00Z',
    durationMs: 1,
    virtualSize: 1,
    allocatedBytes: 1,
    packages: 1,
    builder: 'test',
    refresh: upstream ? 'upstream' : 'never',
    upstream,
  };
}

describe('guest steps for repositories and upgrades', () => {
  it('copies a file:// repository into the guest and writes its sources line; http ones only get the line', () => {
    expect(
      repoSteps('deb', { name: 'local', url: 'file:///srv/my%20repo', suite: './', trusted: true }),
    ).toEqual([
      { kind: 'copy-in', from: '/srv/my repo', toDir: '/var/lib/ost-repos/.in-local' },
      {
        kind: 'run',
        command:
          "rm -rf /var/lib/ost-repos/local && mv /var/lib/ost-repos/.in-local/'my repo' /var/lib/ost-repos/local && rmdir /var/lib/ost-repos/.in-local",
      },
      {
        kind: 'run',
        command:
          "mkdir -p /etc/apt/sources.list.d && printf %s 'deb [trusted=yes] file:/var/lib/ost-repos/local ./\n' > /etc/apt/sources.list.d/ost-local.list",
      },
    ]);
    expect(
      repoSteps('deb', {
        name: 'security',
        url: 'http://deb.debian.org/debian-security',
        suite: 'bookworm-security',
        components: ['main', 'contrib'],
        trusted: false,
      }),
    ).toEqual([
      {
        kind: 'run',
        command:
          "mkdir -p /etc/apt/sources.list.d && printf %s 'deb http://deb.debian.org/debian-security bookworm-security main contrib\n' > /etc/apt/sources.list.d/ost-security.list",
      },
    ]);
    expect(repoSteps('rpm', { name: 'x', url: 'https://m/x/', trusted: true })).toEqual([
      {
        kind: 'run',
        command:
          "mkdir -p /etc/yum.repos.d && printf %s '[ost-x]\nname=ost-x\nbaseurl=https://m/x/\nenabled=1\ngpgcheck=0\n' > /etc/yum.repos.d/ost-x.repo",
      },
    ]);
  });

  it('adds the repositories before the steps, runs a script from a folder of its own, upgrades with the family’s package manager', () => {
    const steps = layerSteps(
      'deb',
      [{ name: 'l', url: 'http://m/l', suite: './', trusted: true }],
      [
        { kind: 'upgrade' },
        { kind: 'install', packages: ['nginx-light', 'less'] },
        { kind: 'script', file: '/set/debian12/host setup.sh' },
        { kind: 'upload', from: '/set/motd', to: '/etc/motd', mode: '0644' },
      ],
    );
    expect(steps).toEqual([
      { kind: 'run', command: expect.stringMatching(/> \/etc\/apt\/sources\.list\.d\/ost-l\.list$/) },
      { kind: 'run', command: upgradeCommand('deb') },
      { kind: 'run', command: installCommand('deb', ['nginx-light', 'less']) },
      { kind: 'copy-in', from: '/set/debian12/host setup.sh', toDir: '/tmp/ost-step-3' },
      {
        kind: 'run',
        command:
          "chmod 0755 /tmp/ost-step-3/'host setup.sh' && /tmp/ost-step-3/'host setup.sh' && rm -rf /tmp/ost-step-3",
      },
      { kind: 'upload', from: '/set/motd', to: '/etc/motd', mode: '0644' },
    ]);
    expect(upgradeCommand('deb')).toMatch(
      /^apt-get update && DEBIAN_FRONTEND=noninteractive apt-get -o .*--force-unsafe-io -y full-upgrade$/,
    );
    expect(installCommand('deb', ['nginx-light', 'less'])).toMatch(
      /^apt-get update && DEBIAN_FRONTEND=noninteractive apt-get -o .*--force-unsafe-io -y install 'nginx-light' 'less'$/,
    );
    expect(upgradeCommand('rpm')).toBe('dnf -y upgrade --refresh');
    expect(installCommand('rpm', ['vdsm'])).toBe("dnf -y install 'vdsm'");
  });
});
