// core/config.ts: every environment variable ost reads, read once; and the ways its values reach the code
// that used to read process.env itself (fault points, the image-set loader through the CLI).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { readConfig } from '../../src/core/config.js';
import { faultPoint, setFaultPoints } from '../../src/core/fault.js';
import { REPO_ROOT } from '../helpers/sets.js';

const dir = mkdtempSync(path.join(tmpdir(), 'ost-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('readConfig', () => {
  it('defaults: nothing set', () => {
    expect(readConfig({})).toEqual({
      libvirtUri: 'qemu:///system',
      accel: undefined,
      stateDir: undefined,
      runtimeDir: undefined,
      layerCache: undefined,
      cacheHome: undefined,
      checkpointDir: undefined,
      dataHome: undefined,
      home: undefined,
      sudo: { uid: undefined, gid: undefined, user: undefined },
      deployment: undefined,
      overlayDir: undefined,
      overlayFallback: undefined,
      templatesDir: undefined,
      imagesDir: undefined,
      imageVars: {},
      fileVars: {},
      fault: { pause: undefined, mark: undefined, resume: undefined },
    });
  });

  it.each([
    ['LIBVIRT_DEFAULT_URI', 'qemu+ssh://h/system', 'libvirtUri'],
    ['OST_STATE_DIR', '/s', 'stateDir'],
    ['XDG_RUNTIME_DIR', '/run/user/7', 'runtimeDir'],
    ['OST_LAYER_CACHE', '/l', 'layerCache'],
    ['XDG_CACHE_HOME', '/c', 'cacheHome'],
    ['OST_CHECKPOINT_DIR', '/cp', 'checkpointDir'],
    ['XDG_DATA_HOME', '/d', 'dataHome'],
    ['HOME', '/home/u', 'home'],
    ['OST_DEPLOYMENT', '/ost/deployment', 'deployment'],
    ['OST_OVERLAY_DIR', '/o', 'overlayDir'],
    ['OST_OVERLAY_FALLBACK', '/f', 'overlayFallback'],
    ['OST_TEMPLATES_DIR', '/t', 'templatesDir'],
    ['OST_IMAGES_DIR', '/i', 'imagesDir'],
  ] as const)('%s → %s', (name, value, field) => {
    expect(readConfig({ [name]: value })[field]).toBe(value);
    // empty counts as unset
    expect(readConfig({ [name]: '' })[field]).toBe(readConfig({})[field]);
  });

  it('OST_ACCEL: kvm or tcg forces it, anything else is detection', () => {
    expect(readConfig({ OST_ACCEL: 'kvm' }).accel).toBe('kvm');
    expect(readConfig({ OST_ACCEL: 'tcg' }).accel).toBe('tcg');
    expect(readConfig({ OST_ACCEL: 'hvf' }).accel).toBeUndefined();
  });

  it("sudo's ids are whole numbers, its user a name", () => {
    expect(readConfig({ SUDO_UID: '1000', SUDO_GID: '100', SUDO_USER: 'me' }).sudo).toEqual({
      uid: 1000,
      gid: 100,
      user: 'me',
    });
    expect(readConfig({ SUDO_UID: 'x', SUDO_GID: '-1' }).sudo).toEqual({
      uid: undefined,
      gid: undefined,
      user: undefined,
    });
  });

  it('OST_IMAGES_* (set ones) for ost.json, every variable for image-set files, copied', () => {
    const env = { OST_IMAGES_DISTRO: 'debian12', OST_IMAGES_BASE: '/b.qcow2', OST_IMAGES_X: '', A: '1' };
    const c = readConfig(env);
    expect(c.imageVars).toEqual({ OST_IMAGES_DISTRO: 'debian12', OST_IMAGES_BASE: '/b.qcow2' });
    expect(c.fileVars).toEqual(env);
    env.A = '2';
    expect(c.fileVars.A).toBe('1');
  });

  it('the fault points', () => {
    expect(readConfig({ OST_FAULT_PAUSE: 'p', OST_FAULT_MARK: '/m', OST_FAULT_RESUME: '/r' }).fault).toEqual({
      pause: 'p',
      mark: '/m',
      resume: '/r',
    });
  });
});

describe('fault points take their settings from the CLI', () => {
  it('stop at the armed point (mark written) until the resume file exists; others pass', async () => {
    const mark = path.join(dir, 'mark');
    const resume = path.join(dir, 'resume');
    setFaultPoints({ pause: 'here', mark, resume });
    try {
      await faultPoint('elsewhere');
      expect(existsSync(mark)).toBe(false);
      let passed = false;
      const at = faultPoint('here').then(() => {
        passed = true;
      });
      await vi.waitFor(() => expect(existsSync(mark)).toBe(true));
      expect(readFileSync(mark, 'utf8')).toBe(`here ${process.pid}\n`);
      await new Promise((r) => setTimeout(r, 120));
      expect(passed).toBe(false);
      writeFileSync(resume, '');
      await at;
      expect(passed).toBe(true);
    } finally {
      setFaultPoints({});
    }
  });
});

describe('the CLI hands the environment down', () => {
  it('a variable an image set names expands to its value when ost started', async () => {
    let stdout = '';
    const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stdout += String(chunk);
      return true;
    });
    const saved = { ...process.env };
    process.env.OST_EL9STREAM_ISO = '/srv/iso/from-the-environment.iso';
    try {
      const set = path.join(REPO_ROOT, 'images/el9stream.yaml');
      const code = await main([
        'build-images',
        set,
        '--dry-run',
        '--offline',
        '--out',
        path.join(dir, 'out'),
      ]);
      expect(code).toBe(0);
    } finally {
      out.mockRestore();
      process.env = saved;
    }
    expect(stdout).toContain('/srv/iso/from-the-environment.iso');
  });
});
