// End-to-end: the real debian12 set built with debootstrap, guestfish, virt-customize and qemu-img, then booted.
import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/core/exec.js';
import { REPO_ROOT } from '../helpers/sets.js';
import { ensureBuilt, isRoot, OST, ost } from './helpers.js';

const MIN = 60_000;
const LAYERS = ['base', 'engine-installed', 'host-installed'];

interface LayerJson {
  layer: string;
  status: string;
  reason: string;
}

function manifest(out: string, layer: string): { key: string; buildId: string; parentBuildId?: string } {
  return JSON.parse(readFileSync(path.join(out, `debian12-${layer}.json`), 'utf8'));
}

async function qemuImgCheck(file: string): Promise<number> {
  return (await run('qemu-img', ['check', '-q', file], { allowFailure: true })).exitCode;
}

describe.skipIf(!isRoot)('ost build-images on images/debian12.yaml (real tools)', () => {
  const work = process.env.OST_E2E_DIR ?? mkdtempSync('/var/tmp/ost-e2e-');
  const out = path.join(work, 'out');
  const setDir = path.join(work, 'set');
  const setFile = path.join(setDir, 'debian12.yaml');
  const statuses = (stdout: string) =>
    Object.fromEntries((JSON.parse(stdout).layers as LayerJson[]).map((l) => [l.layer, l.status]));

  beforeAll(() => {
    ensureBuilt();
    // a copy of the shipped set, so tests can edit its scripts
    rmSync(setDir, { recursive: true, force: true });
    cpSync(path.join(REPO_ROOT, 'images'), setDir, { recursive: true });
  });
  afterAll(() => {
    if (!process.env.OST_E2E_DIR) rmSync(work, { recursive: true, force: true });
  });

  it(
    'builds the whole set: verified layers, relative chain, package lists, 0600 key',
    async () => {
      const r = await ost(['build-images', setFile, '--out', out, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(statuses(r.stdout)).toEqual({
        base: 'built',
        'engine-installed': 'built',
        'host-installed': 'built',
      });
      for (const l of LAYERS) {
        const img = path.join(out, `debian12-${l}.qcow2`);
        expect(statSync(img).mode & 0o777).toBe(0o444);
        expect(await qemuImgCheck(img)).toBe(0);
        expect(readFileSync(path.join(out, `debian12-${l}-pkglist.txt`), 'utf8')).toMatch(
          /^openssh-server /m,
        );
      }
      const info = JSON.parse(
        (await run('qemu-img', ['info', '--output=json', path.join(out, 'debian12-engine-installed.qcow2')]))
          .stdout,
      );
      expect(info['backing-filename']).toBe('debian12-base.qcow2');
      expect(readFileSync(path.join(out, 'debian12-engine-installed-pkglist-diff.txt'), 'utf8')).toMatch(
        /^\+ postgresql /m,
      );
      expect(readFileSync(path.join(out, 'debian12-host-installed-pkglist-diff.txt'), 'utf8')).toMatch(
        /^\+ chrony /m,
      );
      expect(statSync(path.join(out, 'debian12_id_rsa')).mode & 0o777).toBe(0o600);
      expect(readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      expect(existsSync(path.join(out, '.work'))).toBe(false);
    },
    60 * MIN,
  );

  it(
    'boots a VM from engine-installed that answers SSH with the set key',
    async () => {
      const r = await ost([
        'boot-image',
        setFile,
        'engine-installed',
        '--out',
        out,
        '--json',
        '--command',
        'cat /etc/ost-role; systemctl is-enabled nginx; test -s /etc/machine-id && echo has-machine-id',
      ]);
      expect(r.code, r.stderr).toBe(0);
      const res = JSON.parse(r.stdout);
      expect(['running', 'degraded']).toContain(res.systemState);
      expect(res.commandOutput.split('\n')).toEqual(['engine', 'enabled', 'has-machine-id', '']);
    },
    15 * MIN,
  );

  it(
    'a no-op rebuild builds nothing',
    async () => {
      const before = LAYERS.map((l) => manifest(out, l).buildId);
      const r = await ost(['build-images', setFile, '--out', out, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(statuses(r.stdout)).toEqual({
        base: 'cached',
        'engine-installed': 'cached',
        'host-installed': 'cached',
      });
      expect(LAYERS.map((l) => manifest(out, l).buildId)).toEqual(before);
    },
    5 * MIN,
  );

  it(
    "changing one leaf's script rebuilds only that leaf",
    async () => {
      const before = LAYERS.map((l) => manifest(out, l).buildId);
      writeFileSync(
        path.join(setDir, 'debian12/host-setup.sh'),
        `${readFileSync(path.join(setDir, 'debian12/host-setup.sh'), 'utf8')}echo v2 > /etc/ost-host-version\n`,
      );
      const r = await ost(['build-images', setFile, '--out', out, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(statuses(r.stdout)).toEqual({
        base: 'cached',
        'engine-installed': 'cached',
        'host-installed': 'built',
      });
      const after = LAYERS.map((l) => manifest(out, l).buildId);
      expect(after[0]).toBe(before[0]);
      expect(after[1]).toBe(before[1]);
      expect(after[2]).not.toBe(before[2]);
      expect(manifest(out, 'host-installed').parentBuildId).toBe(after[0]);
    },
    30 * MIN,
  );

  it(
    'a failing step fails that layer with its log tail and leaves the sibling and old image intact',
    async () => {
      const engineBefore = manifest(out, 'engine-installed');
      // a failing first step in engine-installed (fails fast), while host-installed changes too
      const good = readFileSync(setFile, 'utf8');
      writeFileSync(
        setFile,
        good.replace(
          '      - install: [postgresql, nginx-light]',
          '      - run: "echo OST-E2E-BROKEN-STEP >&2; exit 7"\n      - install: [postgresql, nginx-light]',
        ),
      );
      const hostScript = path.join(setDir, 'debian12/host-setup.sh');
      writeFileSync(hostScript, `${readFileSync(hostScript, 'utf8')}echo v3 > /etc/ost-host-version\n`);
      try {
        const r = await ost(['build-images', setFile, '--out', out]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('layer engine-installed failed at "customize with virt-customize"');
        expect(r.stderr).toMatch(/last lines of the log:\n(\s+\|.*\n)+/);
        expect(r.stderr).toContain(`full log: ${path.join(out, 'logs/debian12-engine-installed.log')}`);
        expect(r.stderr).toContain('OST-E2E-BROKEN-STEP');
        // the old engine layer is still the committed one, the sibling was built
        expect(manifest(out, 'engine-installed')).toEqual(engineBefore);
        expect(await qemuImgCheck(path.join(out, 'debian12-engine-installed.qcow2'))).toBe(0);
        expect(existsSync(path.join(out, 'debian12-engine-installed.qcow2.tmp'))).toBe(false);
        const host = manifest(out, 'host-installed');
        expect(host.parentBuildId).toBe(manifest(out, 'base').buildId);
      } finally {
        writeFileSync(setFile, good);
      }
    },
    30 * MIN,
  );

  it(
    'kill -9 half-way leaves the previous layers intact and the next run completes',
    async () => {
      const baseBefore = manifest(out, 'base');
      const hostBefore = manifest(out, 'host-installed');
      writeFileSync(
        path.join(setDir, 'debian12/host-setup.sh'),
        `${readFileSync(path.join(setDir, 'debian12/host-setup.sh'), 'utf8')}echo v4 > /etc/ost-host-version\n`,
      );
      const child = spawn(OST, ['build-images', setFile, '--out', out], { stdio: 'ignore' });
      // wait until virt-customize is running on the leaf, then kill ost without any chance to clean up
      const log = path.join(out, 'logs/debian12-host-installed.log');
      const deadline = Date.now() + 10 * MIN;
      while (Date.now() < deadline) {
        if (existsSync(log) && /Examining the guest|Running:/.test(readFileSync(log, 'utf8'))) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      expect(existsSync(path.join(out, 'debian12-host-installed.qcow2.tmp'))).toBe(true);
      child.kill('SIGKILL');
      await new Promise((r) => child.on('exit', r));
      // children die with ost (pdeathsig) and libguestfs stops its appliance
      await new Promise((r) => setTimeout(r, 5000));
      const leftovers = (
        await run('pgrep', ['-f', `virt-customize.*${out}`], { allowFailure: true })
      ).stdout.trim();
      expect(leftovers).toBe('');
      expect(manifest(out, 'base')).toEqual(baseBefore);
      expect(manifest(out, 'host-installed')).toEqual(hostBefore);
      for (const l of LAYERS) expect(await qemuImgCheck(path.join(out, `debian12-${l}.qcow2`))).toBe(0);

      const r = await ost(['build-images', setFile, '--out', out, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(statuses(r.stdout)).toEqual({
        base: 'cached',
        'engine-installed': 'cached',
        'host-installed': 'built',
      });
      expect(readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      expect(existsSync(path.join(out, '.lock'))).toBe(false);
    },
    30 * MIN,
  );

  it('bad image-set files fail before anything is built, naming file and key path', async () => {
    const bad = path.join(work, 'bad.yaml');
    writeFileSync(
      bad,
      'distro: debian12\nfamily: deb\nlayers:\n  - name: leaf\n    parent: nope\n    steps: [{ script: missing.sh }]\n',
    );
    const r = await ost(['build-images', bad, '--out', path.join(work, 'bad-out')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}:5: layers[0].parent: unknown parent "nope"`);
    expect(r.stderr).toContain('layers[0].steps[0].script: script missing.sh does not exist');
    expect(existsSync(path.join(work, 'bad-out'))).toBe(false);
  });
});
