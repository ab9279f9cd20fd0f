import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BuildPaths, writeManifest } from '../../src/builder/build-dir.js';
import { installDomainName, installDomainOwner } from '../../src/builder/layer-kinds/install.js';
import { computeKeys } from '../../src/builder/plan/keys.js';
import { loadImageSet } from '../../src/builder/plan/load.js';
import { makePlan } from '../../src/builder/plan/plan.js';
import { type ProcessId, processAlive, self } from '../../src/core/process.js';
import { setProblems, tempTree } from '../helpers/sets.js';

const IMG = 'not really an image';
const SHA = createHash('sha256').update(IMG).digest('hex');

function fixtureSet() {
  const dir = tempTree({
    'img.qcow2': IMG,
    'a.sh': 'echo a\n',
    'b.sh': 'echo b\n',
    'set.yaml': `distro: t
family: deb
layers:
  - name: base
    import: { source: img.qcow2, sha256: ${SHA} }
  - name: a
    parent: base
    steps: [{ script: a.sh }]
  - name: b
    parent: base
    steps: [{ script: b.sh }]
  - name: c
    parent: b
    steps: [{ run: "true" }]
`,
  });
  return { dir, set: loadImageSet(path.join(dir, 'set.yaml')) };
}

/** A manifest as a build of `layer` (on `parent`) would write it. */
function fakeManifest(
  layer: string,
  parent: string | undefined,
  key: string,
  buildId: string,
  parentBuildId?: string,
) {
  return {
    distro: 't',
    layer,
    parent,
    key,
    buildId,
    parentBuildId,
    file: '',
    builtAt: '',
    durationMs: 0,
    virtualSize: 0,
    allocatedBytes: 0,
    packages: 1,
    builder: 'test',
  };
}

async function pretendBuilt(
  paths: BuildPaths,
  keys: Map<string, string>,
  layers: Record<string, string | undefined>,
) {
  mkdirSync(paths.out, { recursive: true });
  for (const [layer, parent] of Object.entries(layers)) {
    writeFileSync(paths.image(layer), '');
    const parentId = parent ? `id-${parent}` : undefined;
    await writeManifest(
      paths,
      fakeManifest(layer, parent, keys.get(layer) as string, `id-${layer}`, parentId),
    );
  }
}

describe('content keys and the plan', () => {
  it('changes only the edited layer and its descendants', async () => {
    const { dir, set } = fixtureSet();
    const before = await computeKeys(set, { publicKey: 'ssh-rsa AAAA' });
    writeFileSync(path.join(dir, 'b.sh'), 'echo b changed\n');
    const after = await computeKeys(set, { publicKey: 'ssh-rsa AAAA' });
    expect(after.get('base')).toBe(before.get('base'));
    expect(after.get('a')).toBe(before.get('a'));
    expect(after.get('b')).not.toBe(before.get('b'));
    expect(after.get('c')).not.toBe(before.get('c'));
  });

  it('bakes the public key into the base key only through the chain', async () => {
    const { set } = fixtureSet();
    const k1 = await computeKeys(set, { publicKey: 'ssh-rsa AAAA' });
    const k2 = await computeKeys(set, { publicKey: 'ssh-rsa BBBB' });
    for (const l of ['base', 'a', 'b', 'c']) expect(k1.get(l)).not.toBe(k2.get(l));
  });

  it('plans nothing when everything is built, and rebuilds a changed leaf only', async () => {
    const { dir, set } = fixtureSet();
    const paths = new BuildPaths(path.join(dir, 'out'), 't');
    const keys = await computeKeys(set, {});
    await pretendBuilt(paths, keys, { base: undefined, a: 'base', b: 'base', c: 'b' });
    const noop = await makePlan(set, keys, paths);
    expect(noop.map((e) => e.action)).toEqual(['cached', 'cached', 'cached', 'cached']);
    writeFileSync(path.join(dir, 'a.sh'), 'echo a2\n');
    const plan = await makePlan(set, await computeKeys(set, {}), paths);
    expect(plan.map((e) => [e.layer.name, e.action])).toEqual([
      ['base', 'cached'],
      ['a', 'build'],
      ['b', 'cached'],
      ['c', 'cached'],
    ]);
  });

  it('--force rebuilds a layer and its descendants; --only limits the build to a chain', async () => {
    const { dir, set } = fixtureSet();
    const paths = new BuildPaths(path.join(dir, 'out'), 't');
    const keys = await computeKeys(set, {});
    await pretendBuilt(paths, keys, { base: undefined, a: 'base', b: 'base', c: 'b' });
    const forced = await makePlan(set, keys, paths, { force: ['b'] });
    expect(forced.map((e) => e.action)).toEqual(['cached', 'cached', 'build', 'build']);
    expect(forced[3]?.reason).toBe('parent b is rebuilt');
    const only = await makePlan(set, keys, paths, { force: ['base'], only: ['a'] });
    expect(only.map((e) => e.action)).toEqual(['build', 'build', 'skip', 'skip']);
    await expect(makePlan(set, keys, paths, { only: ['zz'] })).rejects.toThrow(/--only zz: no such layer/);
  });

  it('rebuilds a child whose parent was rebuilt since (parent build id changed)', async () => {
    const { dir, set } = fixtureSet();
    const paths = new BuildPaths(path.join(dir, 'out'), 't');
    const keys = await computeKeys(set, {});
    await pretendBuilt(paths, keys, { base: undefined, a: 'base', b: 'base', c: 'b' });
    await writeManifest(paths, fakeManifest('b', 'base', keys.get('b') as string, 'id-b-new', 'id-base'));
    const plan = await makePlan(set, keys, paths);
    expect(plan.map((e) => e.action)).toEqual(['cached', 'cached', 'cached', 'build']);
    expect(plan[3]?.reason).toBe('parent b was rebuilt since');
  });
});

describe('install domains of concurrent builds', () => {
  it('are named after the build process that owns them, so a build only removes those of dead builds', () => {
    const me = self();
    const name = installDomainName('el9stream', 'base', me);
    expect(name).toBe(`ost-build-el9stream-base-p${me.pid}s${me.start}`);
    expect(installDomainOwner('el9stream', name)).toEqual(me);
    expect(processAlive(installDomainOwner('el9stream', name) as ProcessId)).toBe(true);
    // a build of another distro, an older name without an owner, or another tool's domain: never ours
    expect(installDomainOwner('debian12', name)).toBeUndefined();
    expect(installDomainOwner('el9stream', 'ost-build-el9stream-base-1a2b3c4d')).toBeUndefined();
    expect(processAlive({ pid: me.pid, start: `${me.start}1` })).toBe(false);
  });
});

describe('debootstrap text that ends up in the guest', () => {
  it('takes plain words only for suite, components and packages (a newline would add a line to sources.list)', () => {
    const dir = tempTree({
      'set.yaml': [
        'distro: d12',
        'family: deb',
        'layers:',
        '  - name: base',
        '    debootstrap:',
        '      suite: "bookworm\\ndeb http://evil.example/ bookworm main"',
        '      mirror: http://deb.debian.org/debian',
        '      components: [main, "contrib non-free"]',
        '      packages: [python3, "sudo; rm -rf /"]',
        '',
      ].join('\n'),
    });
    const err = setProblems(path.join(dir, 'set.yaml'));
    expect(err.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
      'layers[0].debootstrap.suite: expected a Debian suite or codename, such as bookworm',
      'layers[0].debootstrap.components[1]: expected an archive component, such as main',
      'layers[0].debootstrap.packages[1]: expected a Debian package name',
    ]);
  });
});
