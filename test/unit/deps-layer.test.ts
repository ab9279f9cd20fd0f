// The deps-installed layer (issue 29): a step that installs what named packages need but not the packages
// (`dependenciesOf:`), run by the guest's own shell against apt's and dnf's outputs (a real apt-get
// simulation captured on Debian 12: test/fixtures/apt), and the shipped sets' layer between upgrade and the
// *-installed layers.
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { computeKeys } from '../../src/builder/plan/keys.js';
import { loadImageSet } from '../../src/builder/plan/load.js';
import { ConfigError } from '../../src/core/errors.js';
import { dependenciesCommand, layerSteps } from '../../src/tools/guest-steps.js';
import { REPO_ROOT, tempTree } from '../helpers/sets.js';

const SIMULATION = readFileSync(
  path.join(REPO_ROOT, 'test/fixtures/apt/simulate-install-postgresql-nginx-light.txt'),
  'utf8',
);

/**
 * Run a step's command with fake package tools first in PATH: each logs its argv (one line) to `log`;
 * `apt-get -s` prints `simulation` (exit `simExit`); `dnf install --downloadonly` makes `<name>.rpm` in its
 * download dir for each of `downloads` (exit `dnfExit`); `rpm -qp` names a file by its base name.
 */
function runWithFakes(
  command: string,
  o: { simulation?: string; simExit?: number; downloads?: string[]; dnfExit?: number },
) {
  const dir = tempTree({ 'sim.txt': o.simulation ?? '', 'downloads.txt': (o.downloads ?? []).join('\n') });
  const log = path.join(dir, 'log');
  const tool = (name: string, body: string) => {
    const f = path.join(dir, 'bin', name);
    execFileSync('mkdir', ['-p', path.dirname(f)]);
    writeFileSync(f, `#!/bin/sh\necho "${name} $*" >> ${log}\n${body}\n`);
    chmodSync(f, 0o755);
  };
  tool('apt-get', `case " $* " in *" -s "*) cat ${dir}/sim.txt; exit ${o.simExit ?? 0};; esac; exit 0`);
  tool('apt-mark', 'exit 0');
  tool(
    'dnf',
    [
      'case " $* " in *" --downloadonly "*)',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a line of the script, literal
      '  for a in "$@"; do case "$a" in --downloaddir=*) d="${a#--downloaddir=}";; esac; done',
      `  mkdir -p "$d"; for n in $(cat ${dir}/downloads.txt); do : > "$d/$n.rpm"; done; exit ${o.dnfExit ?? 0};;`,
      'esac; exit 0',
    ].join('\n'),
  );
  // rpm -qp --qf FMT FILE...: each file's base name (a newline after each when FMT ends with \n)
  tool('rpm', 'shift 3; for f in "$@"; do b=$(basename "$f" .rpm); printf "%s\\n" "$b"; done');
  let code = 0;
  try {
    execFileSync('sh', ['-c', command], {
      env: { ...process.env, PATH: `${dir}/bin:${process.env.PATH}` },
      stdio: 'ignore',
    });
  } catch (err) {
    code = (err as { status: number }).status;
  }
  let calls: string[] = [];
  try {
    calls = readFileSync(log, 'utf8').trim().split('\n');
  } catch {
    // nothing ran
  }
  return { code, calls };
}

describe('dependenciesOf: what packages need, not the packages', () => {
  it('deb: installs the new packages of the simulation less the named ones, marked automatic', () => {
    const cmd = dependenciesCommand('deb', ['postgresql', 'nginx-light']);
    const r = runWithFakes(cmd, { simulation: SIMULATION });
    expect(r.code).toBe(0);
    const install = r.calls.find((c) => c.startsWith('apt-get') && / install /.test(c) && !/ -s /.test(c));
    // the captured simulation: nginx-common, nginx, libnginx-mod-http-echo are new; nginx-light is named;
    // the postgresql ones are upgrades of installed packages (`Inst name [old] (new`), left to the install
    expect(install?.split(' install ')[1]?.split(' ')).toEqual([
      'nginx-common',
      'nginx',
      'libnginx-mod-http-echo',
    ]);
    expect(r.calls).toContain('apt-mark auto nginx-common nginx libnginx-mod-http-echo');
    expect(r.calls.filter((c) => !/ -s /.test(c)).join('\n')).not.toMatch(/install.* nginx-light/);
  });

  it('deb: a failed simulation (an unknown package) fails the step and installs nothing', () => {
    const r = runWithFakes(dependenciesCommand('deb', ['no-such-package']), {
      simulation: 'E: Unable to locate package no-such-package\n',
      simExit: 100,
    });
    expect(r.code).not.toBe(0);
    expect(r.calls.filter((c) => / install /.test(c) && !/ -s /.test(c))).toEqual([]);
  });

  it('deb: nothing to add (all there already) runs no install', () => {
    const r = runWithFakes(dependenciesCommand('deb', ['nginx-light']), {
      simulation: 'Inst nginx-light (1.22.1-9 Debian:12/stable [all])\n',
    });
    expect(r.code).toBe(0);
    expect(r.calls.filter((c) => !/ -s /.test(c) && !/update/.test(c))).toEqual([]);
  });

  it("rpm: what dnf's transaction downloads less the named packages, installed by file and marked as dependencies", () => {
    const r = runWithFakes(dependenciesCommand('rpm', ['ovirt-engine', 'vdsm']), {
      downloads: ['ovirt-engine', 'vdsm', 'postgresql-server', 'java-11-openjdk-headless'],
    });
    expect(r.code).toBe(0);
    expect(r.calls).toContain('dnf -y install --downloadonly --downloaddir=/tmp/ost-deps ovirt-engine vdsm');
    const install = r.calls.find((c) => c.startsWith('dnf -y install /tmp/ost-deps/'));
    expect(install?.split(' ').slice(3).sort()).toEqual([
      '/tmp/ost-deps/java-11-openjdk-headless.rpm',
      '/tmp/ost-deps/postgresql-server.rpm',
    ]);
    expect(
      r.calls
        .find((c) => c.startsWith('dnf -y mark remove'))
        ?.split(' ')
        .slice(4)
        .sort(),
    ).toEqual(['java-11-openjdk-headless', 'postgresql-server']);
  });

  it('rpm: a failed transaction (an unknown package) fails the step and installs nothing', () => {
    const r = runWithFakes(dependenciesCommand('rpm', ['no-such-package']), { downloads: [], dnfExit: 1 });
    expect(r.code).not.toBe(0);
    expect(r.calls.filter((c) => c.startsWith('dnf -y install /'))).toEqual([]);
  });

  it('is a step of its own in a set file, in the layer key, and a guest command', async () => {
    const set = (deps: string) =>
      tempTree({
        'set.yaml': `distro: t1
family: deb
layers:
  - name: base
    debootstrap: { suite: bookworm, mirror: http://deb.debian.org/debian }
  - name: deps-installed
    parent: base
    steps: [{ dependenciesOf: [${deps}] }]
  - name: leaf
    parent: deps-installed
    steps: [{ install: [${deps}] }]
`,
      });
    const a = loadImageSet(path.join(set('postgresql, nginx-light'), 'set.yaml'));
    const deps = a.layers.find((l) => l.name === 'deps-installed');
    expect(deps?.steps).toEqual([{ kind: 'dependencies', packages: ['postgresql', 'nginx-light'] }]);
    // a layer that installs from repositories follows them
    expect(deps?.refresh).toBe('upstream');
    expect(layerSteps('deb', [], deps?.steps ?? [])).toEqual([
      { kind: 'run', command: dependenciesCommand('deb', ['postgresql', 'nginx-light']) },
    ]);
    const b = loadImageSet(path.join(set('postgresql'), 'set.yaml'));
    const ka = await computeKeys(a, { publicKey: 'k' });
    const kb = await computeKeys(b, { publicKey: 'k' });
    expect(kb.get('deps-installed')).not.toBe(ka.get('deps-installed'));
    expect(kb.get('base')).toBe(ka.get('base'));
    // one thing per step
    const both = tempTree({
      'set.yaml': `distro: t1\nfamily: deb\nlayers:\n  - name: base\n    debootstrap: { suite: bookworm, mirror: http://m }\n  - name: l\n    parent: base\n    steps: [{ install: [a], dependenciesOf: [a] }]\n`,
    });
    expect(() => loadImageSet(path.join(both, 'set.yaml'))).toThrow(ConfigError);
  });
});

describe('the shipped sets have a deps-installed layer between upgrade and the *-installed layers', () => {
  for (const file of ['images/debian12.yaml', 'images/el9stream.yaml']) {
    it(file, () => {
      const set = loadImageSet(path.join(REPO_ROOT, file), { OST_EL9STREAM_ISO: '/nonexistent.iso' });
      const byName = new Map(set.layers.map((l) => [l.name, l]));
      const deps = byName.get('deps-installed');
      expect(deps?.parent).toBe('upgrade');
      expect(byName.get('engine-installed')?.parent).toBe('deps-installed');
      expect(byName.get('host-installed')?.parent).toBe('deps-installed');
      // it holds what the leaves install, not the leaves' packages
      const step = deps?.steps.find((s) => s.kind === 'dependencies');
      const installed = ['engine-installed', 'host-installed'].flatMap((n) =>
        (byName.get(n)?.steps ?? []).flatMap((s) => (s.kind === 'install' ? s.packages : [])),
      );
      expect(step && 'packages' in step ? [...step.packages].sort() : []).toEqual([...installed].sort());
    });
  }
});
