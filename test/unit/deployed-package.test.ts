// A suite's deployed package (issue 29), the parts without a VM: its spec (exact pins on every layer it sits
// on, read-only files, no scriptlets — built with the real rpmbuild), which deployed layers may go with a set
// (only those made on its very layer builds), retention keeping what a deployed package pins, and the CLI's
// reading of the launcher's manifests in a build dir.
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LayerManifest } from '../../src/builder/build-dir.js';
import { loadImageSet } from '../../src/builder/plan/load.js';
import {
  type DeployedPackageInput,
  deployedMismatch,
  deployedRequires,
  deployedSpec,
} from '../../src/builder/rpm/deployed.js';
import { assertNoScripts } from '../../src/builder/rpm/rpm-file.js';
import { renderSpec } from '../../src/builder/rpm/spec.js';
import { deployedPackagesIn } from '../../src/cli/commands/deployed-package.js';
import { run } from '../../src/core/exec.js';
import { rpmbuildArgv } from '../../src/tools/rpmbuild.js';
import { REPO_ROOT, tempTree } from '../helpers/sets.js';

const set = loadImageSet(path.join(REPO_ROOT, 'images/debian12.yaml'));
const input: DeployedPackageInput = {
  suite: 'demo-suite',
  key: 'f'.repeat(64),
  builtAt: '2026-12-07T23:30:00.000Z',
  manifest: 'debian12-demo-suite-deployed.json',
  vms: [
    {
      vm: 'engine',
      file: 'debian12-demo-suite-engine-deployed.qcow2',
      disks: ['debian12-demo-suite-engine-deployed-sdb.qcow2'],
      layer: 'engine-installed',
      layerBuild: 'e1',
    },
    {
      vm: 'host-0',
      file: 'debian12-demo-suite-host-0-deployed.qcow2',
      disks: [],
      layer: 'host-installed',
      layerBuild: 'h1',
    },
    {
      vm: 'host-1',
      file: 'debian12-demo-suite-host-1-deployed.qcow2',
      disks: [],
      layer: 'host-installed',
      layerBuild: 'h1',
    },
  ],
  networks: [{ name: 'management', prefix: '192.168.200' }],
};
const releases = new Map([
  ['engine-installed', '202612072300'],
  ['host-installed', '202612072301'],
]);

describe("a suite's deployed package", () => {
  it('pins every layer it sits on exactly, once, and holds its layers read-only and its manifest', () => {
    expect(deployedRequires('debian12', input, releases)).toEqual([
      'ost-images-debian12-engine-installed = 1-202612072300',
      'ost-images-debian12-host-installed = 1-202612072301',
    ]);
    const spec = deployedSpec(
      { set, paths: { out: '/b' } as never, payload: 'w1T0.zstdio' },
      input,
      '202612072330',
      deployedRequires('debian12', input, releases),
    );
    expect(spec.name).toBe('ost-images-debian12-demo-suite-deployed');
    expect(spec.provides).toEqual([`ost-images-deployed(debian12-demo-suite) = ${'f'.repeat(64)}`]);
    expect(spec.files.map((f) => `${f.mode} ${f.name} ${f.src}`)).toEqual([
      '0444 debian12-demo-suite-engine-deployed.qcow2 /b/debian12-demo-suite-engine-deployed.qcow2',
      '0444 debian12-demo-suite-engine-deployed-sdb.qcow2 /b/debian12-demo-suite-engine-deployed-sdb.qcow2',
      '0444 debian12-demo-suite-host-0-deployed.qcow2 /b/debian12-demo-suite-host-0-deployed.qcow2',
      '0444 debian12-demo-suite-host-1-deployed.qcow2 /b/debian12-demo-suite-host-1-deployed.qcow2',
      '0644 debian12-demo-suite-deployed.json /b/debian12-demo-suite-deployed.json',
    ]);
    expect(spec.description).toContain(
      'engine: debian12-demo-suite-engine-deployed.qcow2 on debian12-engine-installed.qcow2',
    );
  });

  it('builds with the real rpmbuild: the pins and files rpm reads, no scriptlets', async () => {
    const dir = tempTree({
      'debian12-demo-suite-engine-deployed.qcow2': 'e',
      'debian12-demo-suite-engine-deployed-sdb.qcow2': 'd',
      'debian12-demo-suite-host-0-deployed.qcow2': 'h0',
      'debian12-demo-suite-host-1-deployed.qcow2': 'h1',
      'debian12-demo-suite-deployed.json': '{}',
    });
    const specFile = path.join(dir, 'd.spec');
    const requires = deployedRequires('debian12', input, releases);
    writeFileSync(
      specFile,
      renderSpec(
        deployedSpec({ set, paths: { out: dir } as never, payload: 'w1T0.zstdio' }, input, '1', requires),
      ),
    );
    await run('rpmbuild', rpmbuildArgv(specFile, path.join(dir, 'top')).slice(1));
    const rpm = path.join(dir, 'top/RPMS/noarch/ost-images-debian12-demo-suite-deployed-1-1.noarch.rpm');
    await expect(assertNoScripts(rpm)).resolves.toBeUndefined();
    const req = (await run('rpm', ['-qp', '--requires', rpm])).stdout.split('\n');
    expect(req).toContain('ost-images-debian12-engine-installed = 1-202612072300');
    expect(req).toContain('ost-images-debian12-host-installed = 1-202612072301');
    const files = (await run('rpm', ['-qp', '--qf', '[%{FILEMODES:perms} %{FILENAMES}\\n]', rpm])).stdout;
    expect(files).toContain('-r--r--r-- /usr/share/ost-images/debian12-demo-suite-host-1-deployed.qcow2');
    expect(files).toContain('-rw-r--r-- /usr/share/ost-images/debian12-demo-suite-deployed.json');
  }, 60_000);

  it('goes with a set only when made on its very layer builds', () => {
    const manifests = new Map<string, LayerManifest>([
      ['engine-installed', { buildId: 'e1' } as LayerManifest],
      ['host-installed', { buildId: 'h2' } as LayerManifest],
    ]);
    expect(deployedMismatch(set, input, manifests)).toBe(
      "host-0 was deployed on another build of host-installed (build h1; the set's is h2)",
    );
    manifests.set('host-installed', { buildId: 'h1' } as LayerManifest);
    expect(deployedMismatch(set, input, manifests)).toBeUndefined();
    manifests.delete('engine-installed');
    expect(deployedMismatch(set, input, manifests)).toMatch(
      /engine sits on layer engine-installed, which .* does not have/,
    );
  });
});

describe("the CLI's reading of a build dir's deployed manifests", () => {
  const manifest = (suite: string, build: string) => ({
    version: 1,
    suite,
    distro: 'debian12',
    key: 'a'.repeat(64),
    inputs: { images: { vm: { ref: 'debian12-engine-installed', key: 'k', build } } },
    builtAt: '2026-12-07T23:00:00.000Z',
    timings: {},
    vms: [
      {
        name: 'vm',
        file: `debian12-${suite}-vm-deployed.qcow2`,
        image: { ref: 'debian12-engine-installed', file: 'debian12-engine-installed.qcow2' },
        disks: [{ name: 'sdb', file: `debian12-${suite}-vm-deployed-sdb.qcow2` }],
      },
    ],
    networks: [{ name: 'management', prefix: '192.168.201' }],
  });
  it("finds every suite's, none of the layers' own manifests, and says which layer build each sits on", async () => {
    const dir = tempTree({
      'debian12-demo-deployed.json': JSON.stringify(manifest('demo', 'b7')),
      // a layer of the set that happens to end in -deployed: its manifest is not a suite's
      'debian12-pre-deployed.json': JSON.stringify({ key: 'k', buildId: 'x', layer: 'pre-deployed' }),
      'debian12-engine-installed.json': '{}',
    });
    const warned: string[] = [];
    const warn = (m: string) => void warned.push(m);
    const found = await deployedPackagesIn(
      dir,
      'debian12',
      ['base', 'pre-deployed', 'engine-installed'],
      warn,
    );
    expect(found).toEqual([
      {
        suite: 'demo',
        key: 'a'.repeat(64),
        builtAt: '2026-12-07T23:00:00.000Z',
        manifest: 'debian12-demo-deployed.json',
        vms: [
          {
            vm: 'vm',
            file: 'debian12-demo-vm-deployed.qcow2',
            disks: ['debian12-demo-vm-deployed-sdb.qcow2'],
            layer: 'engine-installed',
            layerBuild: 'b7',
          },
        ],
        networks: [{ name: 'management', prefix: '192.168.201' }],
      },
    ]);
    expect(warned).toEqual([]);
    // a manifest of before the image build went into the inputs: a clear word, no package, the rest goes
    writeFileSync(path.join(dir, 'debian12-old-deployed.json'), JSON.stringify(manifest('old', '')));
    const again = await deployedPackagesIn(dir, 'debian12', ['pre-deployed'], warn);
    expect(again.map((d) => d.suite)).toEqual(['demo']);
    expect(warned).toEqual([
      expect.stringMatching(
        /^not published: .*debian12-old-deployed\.json: VM vm names no image layer of debian12 with its build/,
      ),
    ]);
  });
});
