// A set file reads host paths only inside its own folder (issue 28): `..`, absolute paths and links that
// lead out are input errors naming the file, the key path and the fix, unless --allow-outside says otherwise.
import { chmodSync, chownSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { preflight } from '../../src/builder/build.js';
import { loadImageSet } from '../../src/builder/plan/load.js';
import type { PlanEntry } from '../../src/builder/plan/plan.js';
import { ConfigError, type ConfigProblem } from '../../src/core/errors.js';
import { tempTree } from '../helpers/sets.js';

const BASE = `distro: t1
family: deb
layers:
  - name: base
    debootstrap: { suite: bookworm, mirror: http://deb.debian.org/debian }
`;

const SHA = 'ab'.repeat(32);
const leaf = (steps: string) => `${BASE}  - name: leaf\n    parent: base\n    steps: ${steps}\n`;

/** The problems loading `dir`/set.yaml gives (none: []). */
function problemsIn(dir: string, allowOutside = false): ConfigProblem[] {
  try {
    loadImageSet(path.join(dir, 'set.yaml'), {}, { allowOutside });
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

describe('host paths in a set file stay inside its folder', () => {
  it('upload.from: ../../etc/passwd is an input error naming the file, the key and the fix', () => {
    const dir = tempTree({ 'set.yaml': leaf('[{ upload: { from: ../../etc/passwd, to: /etc/x } }]') });
    const p = problemsIn(dir);
    expect(p).toHaveLength(1);
    expect(p[0]?.file).toBe(path.join(dir, 'set.yaml'));
    expect(p[0]?.path).toBe('layers[1].steps[0].upload.from');
    expect(p[0]?.line).toBe(8);
    expect(p[0]?.message).toContain('upload source ../../etc/passwd is outside the image-set file');
    expect(p[0]?.message).toContain('resolved to /etc/passwd');
    expect(p[0]?.message).toContain('--allow-outside');
    // the user who trusts the file says so
    expect(problemsIn(dir, true)).toEqual([]);
    const set = loadImageSet(path.join(dir, 'set.yaml'), {}, { allowOutside: true });
    expect(set.layers[1]?.steps[0]).toMatchObject({ kind: 'upload', from: '/etc/passwd' });
  });

  it('refuses a link inside the folder that leads out, to a file or through a folder', () => {
    const dir = tempTree({
      'set.yaml': leaf(
        '[{ script: setup.sh }, { upload: { from: etc/passwd, to: /etc/x } }, { script: ok.sh }]',
      ),
      'real.sh': 'true\n',
    });
    symlinkSync('/etc/passwd', path.join(dir, 'setup.sh'));
    symlinkSync('/etc', path.join(dir, 'etc'));
    symlinkSync('real.sh', path.join(dir, 'ok.sh')); // a link that stays inside is fine
    const p = problemsIn(dir);
    expect(p.map((x) => x.path)).toEqual(['layers[1].steps[0].script', 'layers[1].steps[1].upload.from']);
    expect(p[0]?.message).toContain(`resolved to ${path.join(dir, 'setup.sh')}, which leads to /etc/passwd`);
    expect(p[1]?.message).toContain('which leads to /etc/passwd');
  });

  it('refuses a link to a file that does not exist yet, outside (it could be made later)', () => {
    const other = tempTree({});
    const dir = tempTree({
      'set.yaml': `${BASE.replace(/ *debootstrap:.*\n/, '')}    import: { source: img.qcow2, sha256: ${SHA} }\n`,
    });
    symlinkSync(path.join(other, 'later.qcow2'), path.join(dir, 'img.qcow2'));
    const p = problemsIn(dir);
    expect(p.map((x) => x.path)).toEqual(['layers[0].import.source']);
    expect(p[0]?.message).toContain(`which leads to ${path.join(other, 'later.qcow2')}`);
  });

  it('refuses absolute paths outside, every key at once: script, upload, file: repo, import, answer file', () => {
    const dir = tempTree({
      'set.yaml': `distro: t1
family: deb
layers:
  - name: base
    import: { source: /etc/hostname, sha256: ${SHA} }
  - name: leaf
    parent: base
    repos: [{ name: etc, url: "file:///etc", suite: ./ }]
    steps: [{ script: /etc/hostname }, { upload: { from: /etc/passwd, to: /x } }]
  - name: inst
    install: { answerFile: /etc/passwd, osVariant: debian12, location: http://example.org/tree }
`,
    });
    const p = problemsIn(dir);
    expect(p.map((x) => x.path).sort()).toEqual([
      'layers[0].import.source',
      'layers[1].repos[0].url',
      'layers[1].steps[0].script',
      'layers[1].steps[1].upload.from',
      'layers[2].install.answerFile',
    ]);
    for (const x of p) expect(x.message).toMatch(/is outside the image-set file's folder .*--allow-outside/);
    expect(problemsIn(dir, true)).toEqual([]);
  });

  it('expands environment variables before checking: a variable cannot lead an import outside either', () => {
    const dir = tempTree({
      'set.yaml': `distro: t1\nfamily: deb\nlayers:\n  - name: base\n    import: { source: "\${IMG:-img.qcow2}", sha256: ${SHA} }\n`,
    });
    expect(problemsIn(dir)).toEqual([]);
    expect(() => loadImageSet(path.join(dir, 'set.yaml'), { IMG: '../../etc/shadow' })).toThrow(
      /layers\[0\]\.import\.source: image \.\.\/\.\.\/etc\/shadow is outside/,
    );
  });

  it('install media outside may be a file every user can read, never one only root can, nor a folder', () => {
    const media = tempTree({ 'open.iso': 'iso', 'closed.iso': 'iso' });
    chmodSync(path.join(media, 'open.iso'), 0o644);
    chmodSync(path.join(media, 'closed.iso'), 0o600);
    chmodSync(media, 0o755);
    const install = (location: string) =>
      `distro: t1\nfamily: deb\nlayers:\n  - name: base\n    install: { answerFile: a.cfg, osVariant: debian12, location: "${location}" }\n`;
    const at = (location: string) => problemsIn(tempTree({ 'set.yaml': install(location), 'a.cfg': '' }));
    expect(at(path.join(media, 'open.iso'))).toEqual([]);
    expect(at('/nonexistent/dvd.iso')).toEqual([]); // the build's preflight says it is missing
    expect(at(path.join(media, 'closed.iso')).map((x) => x.message)).toEqual([
      expect.stringMatching(/install media .*closed\.iso is outside .*every user can read/),
    ]);
    expect(at('/etc').map((x) => x.path)).toEqual(['layers[0].install.location']);
  });

  it("the build's preflight checks media that came to exist since the set was loaded", () => {
    const media = tempTree({});
    chmodSync(media, 0o755);
    const iso = path.join(media, 'late.iso');
    const dir = tempTree({
      'set.yaml': `distro: t1\nfamily: deb\nlayers:\n  - name: base\n    install: { answerFile: a.cfg, osVariant: debian12, location: ${iso} }\n`,
      'a.cfg': '',
    });
    const set = loadImageSet(path.join(dir, 'set.yaml'));
    writeFileSync(iso, 'secret');
    chmodSync(iso, 0o600);
    const plan = [{ action: 'build', layer: set.layers[0] }] as unknown as PlanEntry[];
    expect(() => preflight(set, plan)).toThrow(/layers\[0\]\.install\.location: install media .* is outside/);
    chmodSync(iso, 0o644);
    expect(() => preflight(set, plan)).not.toThrow();
  });

  it('paths inside the folder, in subfolders, load as before', () => {
    const dir = tempTree({
      'set.yaml': `${leaf('[{ script: sub/s.sh }, { upload: { from: ./sub/../f, to: /f } }]')}    repos: [{ name: l, url: "file:repo", suite: ./ }]\n`,
      'sub/s.sh': 'true\n',
      f: 'x',
    });
    mkdirSync(path.join(dir, 'repo'));
    expect(problemsIn(dir)).toEqual([]);
  });
});

describe.skipIf(process.getuid?.() !== 0)(
  "run as root, what a set reads is out of other users' reach (no swap after the check)",
  () => {
    const ROOT_ONLY = { uids: [0], gids: [0] };
    const set = () =>
      tempTree({
        'set.yaml': `${leaf('[{ script: sub/s.sh }, { upload: { from: f, to: /f } }]')}    repos: [{ name: l, url: "file:repo", suite: ./ }]\n`,
        'sub/s.sh': 'true\n',
        f: 'x',
        'repo/pool/p.deb': 'x',
      });
    const problems = (dir: string, writers = ROOT_ONLY, allowOutside = false) => {
      try {
        loadImageSet(path.join(dir, 'set.yaml'), {}, { allowOutside, writers });
        return [];
      } catch (err) {
        if (err instanceof ConfigError) return err.problems;
        throw err;
      }
    };

    it("root's own files, under a sticky /tmp, load", () => {
      expect(problems(set())).toEqual([]);
    });

    it('a folder on the way that another user owns is refused, naming the key, the folder and the fix', () => {
      const dir = set();
      chownSync(path.join(dir, 'sub'), 65534, 65534);
      const p = problems(dir);
      expect(p.map((x) => x.path)).toEqual(['layers[1].steps[0].script']);
      expect(p[0]?.message).toContain(`${path.join(dir, 'sub')} can be changed by its owner, uid 65534`);
      expect(p[0]?.message).toContain("through that user's own sudo");
      // ... but that user's own sudo may build it, and --allow-outside trusts them
      expect(problems(dir, { uids: [0, 65534], gids: [0, 65534] })).toEqual([]);
      expect(problems(dir, ROOT_ONLY, true)).toEqual([]);
    });

    it('a file another group may write, a repository folder with an other-writable file deep inside, the set file itself', () => {
      const dir = set();
      chownSync(path.join(dir, 'f'), 0, 65534);
      chmodSync(path.join(dir, 'f'), 0o664);
      chmodSync(path.join(dir, 'repo/pool/p.deb'), 0o666);
      chownSync(path.join(dir, 'set.yaml'), 65534, 0);
      const p = problems(dir);
      expect(p.map((x) => x.path).sort()).toEqual([
        '',
        'layers[1].repos[0].url',
        'layers[1].steps[1].upload.from',
      ]);
      const by = (k: string) => p.find((x) => x.path === k)?.message;
      expect(by('layers[1].steps[1].upload.from')).toContain('can be changed by group 65534');
      expect(by('layers[1].repos[0].url')).toContain(
        `${path.join(dir, 'repo/pool/p.deb')} can be changed by every user`,
      );
      expect(by('')).toContain('the image-set file set.yaml');
    });

    it('a sticky folder inside a folder input is refused (anyone could add a file to it after the check)', () => {
      const dir = set();
      mkdirSync(path.join(dir, 'repo/incoming'));
      chmodSync(path.join(dir, 'repo/incoming'), 0o1777);
      const p = problems(dir);
      expect(p.map((x) => x.path)).toEqual(['layers[1].repos[0].url']);
      expect(p[0]?.message).toContain(`${path.join(dir, 'repo/incoming')} can be changed by every user`);
    });

    it('group write counts only when everyone in the group is a writer', () => {
      const dir = set();
      chmodSync(path.join(dir, 'f'), 0o664);
      // nogroup: the sudo user's (nobody's) primary group, but other users' too (sshd, dnsmasq, _apt)
      chownSync(path.join(dir, 'f'), 0, 65534);
      expect(problems(dir, { uids: [0, 65534], gids: [0, 65534] }).map((x) => x.path)).toEqual([
        'layers[1].steps[1].upload.from',
      ]);
      // a group no other user is in
      chownSync(path.join(dir, 'f'), 0, 4242);
      expect(problems(dir, { uids: [0, 65534], gids: [0, 4242] })).toEqual([]);
      expect(problems(dir, { uids: [0], gids: [0] }).map((x) => x.path)).toEqual([
        'layers[1].steps[1].upload.from',
      ]);
    });
  },
);
