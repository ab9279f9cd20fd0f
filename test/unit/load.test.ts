import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadImageSet } from '../../src/builder/plan/load.js';
import { ConfigError } from '../../src/core/errors.js';
import { REPO_ROOT, tempTree } from '../helpers/sets.js';

const BASE = `distro: t1
family: deb
layers:
  - name: base
    debootstrap: { suite: bookworm, mirror: http://deb.debian.org/debian }
`;

function problemsOf(yaml: string, extra: Record<string, string> = {}) {
  const dir = tempTree({ 'set.yaml': yaml, ...extra });
  try {
    loadImageSet(path.join(dir, 'set.yaml'));
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadImageSet', () => {
  it('loads the shipped example sets', () => {
    const deb = loadImageSet(path.join(REPO_ROOT, 'images/debian12.yaml'));
    // base → upgrade (the distro's updates) → deps-installed → leaves; all but the base follow their
    // repositories
    expect(deb.layers.map((l) => [l.name, l.parent, l.refresh])).toEqual([
      ['base', undefined, 'never'],
      ['upgrade', 'base', 'upstream'],
      ['deps-installed', 'upgrade', 'upstream'],
      ['engine-installed', 'deps-installed', 'upstream'],
      ['host-installed', 'deps-installed', 'upstream'],
    ]);
    expect(deb.layers[0]?.base?.kind).toBe('debootstrap');
    expect(deb.layers[1]?.repos.map((r) => `${r.url} ${r.suite}`)).toEqual([
      'http://deb.debian.org/debian bookworm-updates',
      'http://deb.debian.org/debian-security bookworm-security',
    ]);
    const el = loadImageSet(path.join(REPO_ROOT, 'images/el9stream.yaml'));
    expect(el.layers.map((l) => [l.name, l.parent, l.refresh])).toEqual([
      ['base', undefined, 'never'],
      ['upgrade', 'base', 'upstream'],
      ['deps-installed', 'upgrade', 'upstream'],
      ['engine-installed', 'deps-installed', 'upstream'],
      ['host-installed', 'deps-installed', 'upstream'],
      ['he-installed', 'host-installed', 'upstream'],
    ]);
    // the base's repositories are watched, never written; the copr is configured by deps-installed's script
    // and watched there (the leaves above it follow it too)
    expect(el.layers[0]?.repos.every((r) => r.watchOnly)).toBe(true);
    expect(el.layers[2]?.repos.map((r) => [r.name, r.watchOnly])).toEqual([['ovirt-master-snapshot', true]]);
    expect(el.layers[3]?.repos).toEqual([]);
  });

  it('reports an unknown parent with the allowed names and the line', () => {
    const p = problemsOf(`${BASE}  - name: leaf\n    parent: bse\n    steps: [{ run: "true" }]\n`);
    expect(p).toHaveLength(1);
    expect(p[0]?.path).toBe('layers[1].parent');
    expect(p[0]?.message).toContain('unknown parent "bse"; allowed: base');
    expect(p[0]?.line).toBe(7);
    expect(p[0]?.file).toMatch(/set\.yaml$/);
  });

  it('reports a parent cycle once, naming the loop', () => {
    const p = problemsOf(
      `${BASE}  - name: a\n    parent: b\n    steps: [{ run: "true" }]\n  - name: b\n    parent: a\n    steps: [{ run: "true" }]\n`,
    );
    const cycles = p.filter((x) => x.message.includes('cycle'));
    expect(cycles).toHaveLength(1);
    expect(cycles[0]?.message).toMatch(/a → b → a|b → a → b/);
  });

  it('reports a missing script file with the resolved path', () => {
    const p = problemsOf(`${BASE}  - name: leaf\n    parent: base\n    steps:\n      - script: nope.sh\n`);
    expect(p).toEqual([
      expect.objectContaining({
        path: 'layers[1].steps[0].script',
        message: expect.stringContaining('nope.sh does not exist'),
      }),
    ]);
  });

  it('reports a missing kickstart file', () => {
    const p = problemsOf(
      `distro: el9\nfamily: rpm\nlayers:\n  - name: base\n    install: { location: /x.iso, answerFile: base.ks, osVariant: centos-stream9 }\n`,
    );
    expect(p).toEqual([
      expect.objectContaining({
        path: 'layers[0].install.answerFile',
        message: expect.stringContaining('answer file base.ks does not exist'),
      }),
    ]);
  });

  it('reports a bad size with what is allowed', () => {
    const p = problemsOf(BASE.replace('debian }', 'debian, diskSize: 6GB }'));
    expect(p).toEqual([
      expect.objectContaining({
        path: 'layers[0].debootstrap.diskSize',
        message: expect.stringContaining('expected a size such as 6G'),
      }),
    ]);
  });

  it('reports duplicate layer names', () => {
    const p = problemsOf(`${BASE}  - name: base\n    parent: base\n    steps: [{ run: "true" }]\n`);
    expect(
      p.some(
        (x) =>
          x.path === 'layers[1].name' && x.message.includes('duplicate layer name "base" (also layers[0])'),
      ),
    ).toBe(true);
  });

  it('reports every problem at once', () => {
    const p = problemsOf(
      `distro: Bad_Name\nfamily: deb\nlayers:\n  - name: base\n    debootstrap: { suite: bookworm, mirror: http://m, diskSize: big }\n  - name: x\n    parent: nope\n    bogus: 1\n    steps: [{ run: "true" }]\n`,
    );
    expect(p.map((x) => x.path).sort()).toEqual(['distro', 'layers[0].debootstrap.diskSize', 'layers[1]']);
    expect(p.find((x) => x.path === 'layers[1]')?.message).toContain('bogus');
  });

  it('reports unknown placeholders in the answer file', () => {
    const p = problemsOf(
      `distro: el9\nfamily: rpm\nvariables: { tz: UTC }\nlayers:\n  - name: base\n    install: { location: /x.iso, answerFile: base.ks, osVariant: centos-stream9 }\n`,
      { 'base.ks': 'timezone {{ tz }}\nsshkey "{{ ssh_public_key }}"\nx {{ nope }}\n' },
    );
    expect(p).toEqual([expect.objectContaining({ message: expect.stringContaining('{{ nope }}') })]);
  });

  it('requires exactly one base method and steps on derived layers', () => {
    const p = problemsOf(
      `distro: t\nfamily: deb\nlayers:\n  - name: base\n  - name: leaf\n    parent: base\n    steps: [{ run: "a", install: [x] }]\n`,
    );
    expect(p.map((x) => x.message)).toEqual([
      expect.stringContaining('needs exactly one of debootstrap:, import:, install:'),
      expect.stringContaining('a step does one thing, found install and run'),
    ]);
  });

  it('reports invalid YAML with its line', () => {
    const p = problemsOf('distro: [unclosed\n');
    expect(p[0]?.message).toMatch(/not valid YAML/);
    expect(p[0]?.line).toBeGreaterThan(0);
  });

  it('reports a missing file clearly', () => {
    expect(() => loadImageSet('/nonexistent/set.yaml')).toThrow(/file not found/);
  });
});
