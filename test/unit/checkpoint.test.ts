// The checkpoint store (atomic commit, names, gc of killed writers), the content key, the `--from` checks
// and the generation names of disk tops; the restore XML rewrite against a domain XML libvirt 9.0 saved.

import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OstError, UsageError } from '../../src/core/errors.js';
import { domainXmlForRestore } from '../../src/launcher/checkpoint/domain-xml.js';
import { checkpointSubnets, checkSuite } from '../../src/launcher/checkpoint/from.js';
import { contentKey } from '../../src/launcher/checkpoint/key.js';
import {
  copySaveImage,
  HEADER_BYTES,
  readSaveImage,
  saveData,
} from '../../src/launcher/checkpoint/save-image.js';
import {
  CHECKPOINT_NAME,
  type CheckpointRecord,
  checkName,
  checkpointRoot,
  gcCheckpoints,
  listCheckpoints,
  readCheckpoint,
  removeCheckpoint,
  startCheckpoint,
} from '../../src/launcher/checkpoint/store.js';
import { nextTop } from '../../src/launcher/checkpoint/take.js';
import { loadEnvironment } from '../../src/launcher/env/load.js';
import type { EnvRecord } from '../../src/launcher/env-dir/record.js';
import { readMetadata } from '../../src/launcher/libvirt/render.js';
import { asList, attr, child, parseXml, type XmlNode } from '../../src/launcher/libvirt/xml.js';
import { dnsmasqConfig, hostEnd, netnsMountPropagation } from '../../src/launcher/net/isolated.js';
import { layoutEnv } from '../../src/launcher/net/layout.js';
import { cacheKey, cacheName } from '../../src/launcher/up/checkpoint-cache.js';
import type { UpOptions } from '../../src/launcher/up/run.js';
import { sshArgv } from '../../src/tools/ssh.js';
import { REPO_ROOT, tempTree } from '../helpers/sets.js';

const demo = () => loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'demo-suite');

function record(name: string, created: string, envId = '0a1b2c3d'): CheckpointRecord {
  const env = {
    id: envId,
    suite: 'demo-suite',
    networks: [{ name: 'management', subnet: 201, libvirtName: `ost${envId}-201` }],
    vms: [{ name: 'engine', nics: [] }],
  } as unknown as EnvRecord;
  return { version: 1, name, created, key: 'k', env, deployed: false, vms: [], timings: {} };
}

async function take(root: string, name: string, created = new Date().toISOString(), replace = false) {
  const d = await startCheckpoint(root, name, process.getgid?.() ?? 0, replace);
  writeFileSync(path.join(d.dir, 'engine.mem'), 'memory');
  await d.commit(record(name, created), replace);
  return d;
}

describe('checkpoint store', () => {
  it('defaults to /var/lib/ost/checkpoints for root, the data dir for others; the flag and env var move it', () => {
    expect(checkpointRoot(undefined, {}, 0)).toBe('/var/lib/ost/checkpoints');
    expect(checkpointRoot(undefined, { HOME: '/home/u' }, 1000)).toBe('/home/u/.local/share/ost/checkpoints');
    expect(checkpointRoot(undefined, { XDG_DATA_HOME: '/d' }, 1000)).toBe('/d/ost/checkpoints');
    expect(checkpointRoot(undefined, { OST_CHECKPOINT_DIR: '/c' }, 0)).toBe('/c');
    expect(checkpointRoot('/flag', { OST_CHECKPOINT_DIR: '/c' }, 0)).toBe('/flag');
  });

  it('refuses names that are paths, hidden or empty', () => {
    for (const bad of ['', '.tmp-x', '../x', 'a/b', '-x', 'x'.repeat(65)])
      expect(() => checkName(bad), bad).toThrow(UsageError);
    for (const good of ['e2e-1', 'after_deploy', 'v4.5.x']) expect(() => checkName(good)).not.toThrow();
  });

  it('commits a checkpoint whole under its name; a draft is never listed or read; an existing name needs --force', async () => {
    const root = path.join(tempTree({}), 'checkpoints');
    const d = await startCheckpoint(root, 'one', process.getgid?.() ?? 0, false);
    expect(statSync(root).mode & 0o777).toBe(0o711);
    expect(statSync(d.dir).mode & 0o777).toBe(0o750);
    expect(path.basename(d.dir)).toMatch(/^\.tmp-one-[0-9a-f]{8}$/);
    expect(await listCheckpoints(root)).toEqual([]);
    await expect(readCheckpoint(root, 'one')).rejects.toThrow(/no checkpoint one in/);
    writeFileSync(path.join(d.dir, 'engine.mem'), 'memory');
    await d.commit(record('one', '2026-12-01T00:00:00.000Z'), false);
    expect(existsSync(d.dir)).toBe(false);
    const c = await readCheckpoint(root, 'one');
    expect(readFileSync(path.join(c.dir, 'engine.mem'), 'utf8')).toBe('memory');
    expect(c.sizeBytes).toBeGreaterThan(0);

    const e = await startCheckpoint(root, 'one', 0, false).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(OstError);
    expect(String((e as OstError).hint)).toContain('--force');
    await take(root, 'one', '2026-12-02T00:00:00.000Z', true);
    expect((await readCheckpoint(root, 'one')).record.created).toBe('2026-12-02T00:00:00.000Z');
    expect(readdirSync(root).filter((f) => f.startsWith('.old-') || f.startsWith('.tmp-'))).toEqual([]);
  });

  it('gc removes drafts of dead writers and interrupted removals, keeps live ones, expires old unused checkpoints', async () => {
    const root = path.join(tempTree({}), 'checkpoints');
    await take(root, 'old', '2026-11-01T00:00:00.000Z');
    await take(root, 'old-in-use', '2026-11-01T00:00:00.000Z');
    await take(root, 'new', new Date().toISOString());
    const live = await startCheckpoint(root, 'live', 0, false);
    // a writer killed by -9: its pid is gone
    const dead = path.join(root, '.tmp-dead-00000000');
    mkdirSync(dead);
    writeFileSync(path.join(dead, '.writer'), JSON.stringify({ pid: 2 ** 22 + 1, start: '1' }));
    const half = path.join(root, '.old-gone-00000000');
    mkdirSync(half);
    const r = await gcCheckpoints(root, { inUse: new Set() });
    expect(r.partial.sort()).toEqual([half, dead].sort());
    expect(existsSync(live.dir)).toBe(true);
    expect(r.expired).toEqual([]);

    const inUse = new Set([path.join(root, 'old-in-use')]);
    const r2 = await gcCheckpoints(root, { keepDays: 7, inUse });
    expect(r2.expired).toEqual(['old']);
    expect((await listCheckpoints(root)).map((c) => c.name).sort()).toEqual(['new', 'old-in-use']);
    // a draft without its writer file (being committed) is left alone while young
    const committing = path.join(root, '.tmp-c-11111111');
    mkdirSync(committing);
    expect((await gcCheckpoints(root, { inUse })).partial).toEqual([]);
    utimesSync(committing, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
    expect((await gcCheckpoints(root, { inUse })).partial).toEqual([committing]);
    await removeCheckpoint(root, 'new');
    expect((await listCheckpoints(root)).map((c) => c.name)).toEqual(['old-in-use']);
  });
});

describe('checkpoint disks and keys', () => {
  it('names the next generation of a disk top beside it', () => {
    expect(nextTop('/dev/shm/ost/0a1b2c3d/engine.qcow2')).toBe('/dev/shm/ost/0a1b2c3d/engine.c1.qcow2');
    expect(nextTop('/dev/shm/ost/0a1b2c3d/engine.c1.qcow2')).toBe('/dev/shm/ost/0a1b2c3d/engine.c2.qcow2');
    expect(nextTop('/d/images/host-0-sda.raw')).toBe('/d/images/host-0-sda.c1.qcow2');
    expect(nextTop('/d/host-0-sda.c9.qcow2')).toBe('/d/host-0-sda.c10.qcow2');
  });

  it('keys a checkpoint by images, suite, deploy scripts and name', () => {
    const env = demo();
    const images = new Map(
      env.vms.map((vm) => [
        vm.name,
        {
          ref: `debian12-${vm.name}`,
          path: `/usr/share/ost-images/${vm.name}.qcow2`,
          package: { name: `ost-images-debian12-${vm.name}`, version: '1', release: '202612010000' },
        },
      ]),
    );
    const k = contentKey(env, images, 'dual', 'a');
    expect(k).toMatch(/^[0-9a-f]{64}$/);
    expect(contentKey(demo(), images, 'dual', 'a')).toBe(k);
    expect(contentKey(env, images, 'dual', 'b')).not.toBe(k);
    expect(contentKey(env, images, 'ipv4', 'a')).not.toBe(k);
    const newer = new Map(images);
    const e = newer.get('engine');
    if (e) newer.set('engine', { ...e, package: { ...e.package, release: '202612020000' } });
    expect(contentKey(env, newer, 'dual', 'a')).not.toBe(k);
    const bigger = { ...env, vms: env.vms.map((vm) => ({ ...vm, memoryMiB: vm.memoryMiB * 2 })) };
    expect(contentKey(bigger, images, 'dual', 'a')).not.toBe(k);
  });

  it("keys a checkpoint by its deploy scripts' bytes: one byte changed is another key, the same bytes the same", () => {
    // a suite of its own whose deploy script the test rewrites (same name, same path, same length)
    const dir = tempTree({
      'ost-env.yaml':
        'suites:\n  s:\n    networks:\n      m: { management: true }\n    vms:\n' +
        '      vm: { image: debian12-base, nics: [m], deployScripts: [deploy.sh] }\n',
      'deploy.sh': 'echo one\n',
    });
    const script = path.join(dir, 'deploy.sh');
    const images = new Map([
      [
        'vm',
        {
          ref: 'debian12-base',
          path: '/usr/share/ost-images/debian12-base.qcow2',
          package: { name: 'ost-images-debian12-base', version: '1', release: '202612010000' },
        },
      ],
    ]);
    const keyNow = () =>
      contentKey(loadEnvironment(path.join(dir, 'ost-env.yaml'), 's'), images, 'dual', 'a');
    const first = keyNow();
    // written again with the same bytes (a new mtime): the same key
    writeFileSync(script, 'echo one\n');
    utimesSync(script, new Date(Date.now() + 60_000), new Date(Date.now() + 60_000));
    expect(keyNow()).toBe(first);
    // one byte changed, the size and the path as they were: another key
    writeFileSync(script, 'echo two\n');
    const second = keyNow();
    expect(second).not.toBe(first);
    // and back: the first key again (the key is of the bytes, not of the history)
    writeFileSync(script, 'echo one\n');
    expect(keyNow()).toBe(first);
    // a script that went missing after the suite was read is not the script it was
    const env = loadEnvironment(path.join(dir, 'ost-env.yaml'), 's');
    rmSync(script);
    const gone = contentKey(env, images, 'dual', 'a');
    expect([first, second]).not.toContain(gone);
  });
});

describe('ost up --from checks', () => {
  const stored = (env: EnvRecord) => ({
    name: 'c',
    dir: '/x/c',
    sizeBytes: 0,
    record: { ...record('c', ''), env },
  });

  it('refuses another suite, other VMs or networks, naming the suite it was taken of', () => {
    const env = demo();
    const was = {
      suite: 'other',
      vms: [{ name: 'a' }],
      networks: [{ name: 'management' }],
    } as unknown as EnvRecord;
    const e = (() => {
      try {
        checkSuite(env, stored(was));
      } catch (err) {
        return err as OstError;
      }
    })();
    expect(e?.message).toMatch(/does not fit suite demo-suite .*taken of suite other.*its VMs are a/);
    expect(e?.hint).toContain('ost up other --from c');
  });

  it("says which env holds a checkpoint's subnet", async () => {
    const leases = tempTree({
      '192.168.201.json': JSON.stringify({
        prefix: '192.168.201',
        envId: 'feedf00d',
        network: 'management',
        owner: { pid: 1, start: '' },
      }),
    });
    const was = record('c', '').env;
    await expect(checkpointSubnets(stored(was), leases)).rejects.toThrow(
      /management \(192\.168\.201\.0\/24\) is leased by environment feedf00d/,
    );
    const free = tempTree({});
    expect(await checkpointSubnets(stored(was), free)).toEqual(new Map([['management', '192.168.201']]));
  });
});

describe('the domain XML a VM is restored with', () => {
  // what libvirt 9.0 saved with an external memory snapshot of a demo-suite engine (virsh save-image-dumpxml)
  const saved = readFileSync(
    path.join(REPO_ROOT, 'test/fixtures/launcher/saved-domain-libvirt9.xml'),
    'utf8',
  );
  const dom = (xml: string) => {
    const p = parseXml(xml);
    if ('error' in p) throw new Error(p.error);
    return child(p.doc, 'domain') as XmlNode;
  };
  const list = (n: XmlNode | undefined, k: string) => asList(n?.[k]) as XmlNode[];

  it('puts the disks on the new tops and changes nothing else in place (revert)', () => {
    const out = domainXmlForRestore(saved, {
      disks: new Map([['vda', { path: '/dev/shm/ost/f9aff895/engine.c2.qcow2', format: 'qcow2' }]]),
    });
    const before = dom(saved);
    const after = dom(out);
    expect(after.name).toBe(before.name);
    expect(after.uuid).toBe(before.uuid);
    const disk = list(child(after, 'devices'), 'disk')[0];
    expect(attr(child(disk, 'source'), 'file')).toBe('/dev/shm/ost/f9aff895/engine.c2.qcow2');
    expect(attr(child(disk, 'driver'), 'type')).toBe('qcow2');
    // device addresses, NIC MACs and CPU are what the memory was saved with
    const addrs = (d: XmlNode) =>
      ['disk', 'controller', 'interface', 'rng'].flatMap((k) =>
        list(child(d, 'devices'), k).map((x) => JSON.stringify(child(x, 'address') ?? null)),
      );
    expect(addrs(after)).toEqual(addrs(before));
    const macs = (d: XmlNode) =>
      list(child(d, 'devices'), 'interface').map((i) => attr(child(i, 'mac'), 'address'));
    expect(macs(after)).toEqual(macs(before));
    expect(child(after, 'cpu')).toEqual(child(before, 'cpu'));
    expect(readMetadata(after)).toEqual(readMetadata(before));
  });

  it('moves the domain into a new env dir: console log, metadata, OST working dir; name and UUID stay (up --from)', () => {
    const before = dom(saved);
    const out = domainXmlForRestore(saved, {
      disks: new Map([['vda', { path: '/dev/shm/ost/f9aff895/engine.qcow2', format: 'qcow2' }]]),
      consoleLog: '/srv/deployment/logs/engine',
      meta: {
        ost: {
          envId: 'f9aff895',
          suite: 'demo-suite',
          workdir: '/srv/deployment',
          overlayDir: '/dev/shm/ost/f9aff895',
          ownerPid: 1,
          ownerStart: '2',
          state: 'starting',
          vm: 'engine',
          roles: ['engine'],
        },
        deployScripts: ['deploy-scripts/demo-suite.sh'],
      },
    });
    const after = dom(out);
    // libvirt 9.0 refuses a restore that changes either ("Target domain name/uuid … does not match source")
    expect(after.name).toBe(before.name);
    expect(after.uuid).toBe(before.uuid);
    const nics = list(child(after, 'devices'), 'interface');
    for (const i of nics) expect(i.target).toBeUndefined();
    for (const k of ['serial', 'console'])
      expect(attr(child(list(child(after, 'devices'), k)[0], 'log'), 'file')).toBe(
        '/srv/deployment/logs/engine',
      );
    expect(readMetadata(after)?.workdir).toBe('/srv/deployment');
    expect(readMetadata(after)?.state).toBe('starting');
    expect(out).toContain('<ost-working-dir comment="/srv/deployment"');
    expect(out).not.toContain('ost-e2e-checkpoint');
  });

  it('fails on a disk it was given no file for', () => {
    expect(() => domainXmlForRestore(saved, { disks: new Map() })).toThrow(/no new file given for disk vda/);
  });
});

describe('ost up --checkpoint-cache', () => {
  it('names a cache checkpoint by suite, deploy mode and key: always a valid name of 64 characters at most', () => {
    const key = 'ab'.repeat(32);
    expect(cacheName('demo-suite', 'deployed', key)).toBe('cache-demo-suite-deployed-abababababab');
    expect(cacheName('demo-suite', 'booted', key)).toBe('cache-demo-suite-booted-abababababab');
    // booted from a deployed package: a name of its own, so neither kind replaces the other's checkpoint
    expect(cacheName('demo-suite', 'frompkg', key)).toBe('cache-demo-suite-frompkg-abababababab');
    for (const kind of ['deployed', 'booted', 'frompkg'] as const) {
      const long = cacheName(`basic suite/${'x'.repeat(80)}`, kind, key);
      expect(long.length).toBeLessThanOrEqual(64);
      expect(long).toMatch(CHECKPOINT_NAME);
      expect(long).toMatch(new RegExp(`^cache-basic-suite-x+-${kind}-abababababab$`));
    }
  });

  it('keys the lookup by the images as resolved and whether deploy scripts run; the same up gives the same key', async () => {
    const dir = tempTree({ debian12_id_rsa: 'a key' });
    chmodSync(dir, 0o755);
    for (const f of ['debian12-engine-installed', 'debian12-host-installed'])
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(dir, `${f}.qcow2`), '64M']);
    const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    const options = (deploy: boolean, env = demo()) =>
      ({ env, deploy, images: { imagesDir: dir }, ipMode: 'dual', ...me }) as unknown as UpOptions;
    const first = await cacheKey(options(true));
    const k1 = first.key;
    expect(k1).toMatch(/^[0-9a-f]{64}$/);
    // the up that follows boots exactly the images the key was made of (not a second resolution's)
    expect([...first.images.values()].map((i) => i.path).sort()).toEqual(
      ['debian12-engine-installed', 'debian12-host-installed'].map((f) => path.join(dir, `${f}.qcow2`)),
    );
    expect((await cacheKey(options(true))).key).toBe(k1);
    // an ost-env suite always deploys: --deploy does not change what its checkpoint holds
    expect((await cacheKey(options(false))).key).toBe(k1);
    // an OST suite deploys only with --deploy: a booted and a deployed env are different checkpoints
    const ost = { ...demo(), kind: 'ost-json' as const };
    expect((await cacheKey(options(true, ost))).key).not.toBe((await cacheKey(options(false, ost))).key);
    // a rebuilt image (another file, another mtime) is another key
    execFileSync('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      path.join(dir, 'debian12-host-installed.qcow2'),
      '64M',
    ]);
    utimesSync(path.join(dir, 'debian12-host-installed.qcow2'), new Date(), new Date(Date.now() + 5000));
    expect((await cacheKey(options(true))).key).not.toBe(k1);
  });
});

describe('a second env from one checkpoint (--isolated)', () => {
  it('copies a save image with another domain XML: header, cookie and migration stream as they were', async () => {
    const dir = tempTree({});
    const xml = '<domain><name>f9aff895-ost-demo-suite-engine</name></domain>';
    const cookie = Buffer.from('<qemu-cookie><cpu/></qemu-cookie>');
    const dataLen = xml.length + 1 + cookie.length + 1 + 65536;
    const header = Buffer.alloc(HEADER_BYTES);
    header.write('LibvirtQemudSave', 0, 'latin1');
    for (const [i, v] of [2, dataLen, 1, 0, xml.length + 1].entries()) header.writeUInt32LE(v, 16 + 4 * i);
    const stream = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 251));
    const src = path.join(dir, 'engine.mem');
    writeFileSync(src, Buffer.concat([header, saveData(xml, cookie, dataLen, src), stream]));
    const before = await readSaveImage(src);
    expect(before.xml).toBe(xml);
    expect(before.cookie.toString()).toBe(cookie.toString());

    const renamed = '<domain><name>0a1b2c3d-ost-demo-suite-engine</name><uuid>x</uuid></domain>';
    const dst = path.join(dir, 'copy.mem');
    await copySaveImage(src, dst, renamed);
    const after = await readSaveImage(dst);
    expect(after.xml).toBe(renamed);
    expect(after.cookie.toString()).toBe(cookie.toString());
    expect(after.header).toEqual({ ...before.header, cookieOffset: renamed.length + 1 });
    expect(statSync(dst).mode & 0o777).toBe(0o600);
    // qemu's stream starts where it did, byte for byte
    expect(
      readFileSync(dst)
        .subarray(HEADER_BYTES + dataLen)
        .equals(stream),
    ).toBe(true);
    // a copy is never written through an existing file, and an XML that does not fit is refused
    await expect(copySaveImage(src, dst, renamed)).rejects.toThrow(/EEXIST/);
    await expect(copySaveImage(src, path.join(dir, 'big.mem'), 'x'.repeat(dataLen))).rejects.toThrow(
      /does not fit in the save image/,
    );
    // libvirt's mark of a save that never finished
    writeFileSync(
      path.join(dir, 'partial.mem'),
      Buffer.concat([Buffer.from('LibvirtQemudPart'), header.subarray(16)]),
    );
    await expect(readSaveImage(path.join(dir, 'partial.mem'))).rejects.toThrow(/incomplete/);
  });

  it('restores under its own name and UUID, on its own networks, with its metadata', () => {
    const saved = readFileSync(
      path.join(REPO_ROOT, 'test/fixtures/launcher/saved-domain-libvirt9.xml'),
      'utf8',
    );
    const out = domainXmlForRestore(saved, {
      disks: new Map([['vda', { path: '/dev/shm/ost/0a1b2c3d/engine.qcow2', format: 'qcow2' }]]),
      rename: {
        name: '0a1b2c3d-ost-demo-suite-engine',
        uuid: '11111111-2222-3333-4444-555555555555',
        networks: new Map([
          ['ostf9aff895-200', 'ost0a1b2c3d-200'],
          ['ostf9aff895-201', 'ost0a1b2c3d-201'],
        ]),
      },
    });
    const p = parseXml(out);
    if ('error' in p) throw new Error(p.error);
    const d = child(p.doc, 'domain') as XmlNode;
    expect(d.name).toBe('0a1b2c3d-ost-demo-suite-engine');
    expect(d.uuid).toBe('11111111-2222-3333-4444-555555555555');
    const nets = (asList(child(d, 'devices')?.interface) as XmlNode[]).map((i) =>
      attr(child(i, 'source'), 'network'),
    );
    expect(nets).toEqual(['ost0a1b2c3d-200', 'ost0a1b2c3d-201']);
    expect(out).not.toContain('f9aff895-ost');
    expect(() =>
      domainXmlForRestore(saved, {
        disks: new Map([['vda', { path: '/x.qcow2', format: 'qcow2' }]]),
        rename: { name: 'n', uuid: 'u', networks: new Map() },
      }),
    ).toThrow(/no new network given for ostf9aff895-200/);
  });

  it("serves the guests as libvirt's dnsmasq did: static DHCP and DHCPv6 hosts, RA, every NIC's name", () => {
    const layout = layoutEnv(
      demo(),
      '0a1b2c3d',
      new Map([
        ['management', '192.168.200'],
        ['storage', '192.168.201'],
      ]),
    );
    const { conf, hosts } = dnsmasqConfig(layout, '/run/ost/netns/0a1b2c3d', { shortNames: true });
    const lines = conf.split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        'pid-file=/run/ost/netns/0a1b2c3d/dnsmasq.pid',
        'interface=gw0',
        'interface=gw1',
        'dhcp-range=192.168.200.100,192.168.200.254,255.255.255.0',
        'dhcp-host=54:52:c0:a8:c8:02,192.168.200.2,ost-demo-suite-engine',
        'dhcp-host=54:52:c0:a8:c9:03,192.168.201.3,ost-demo-suite-host-0-storage',
        'dhcp-range=fd8f:1391:3a82:200::c0a8:c864,fd8f:1391:3a82:200::c0a8:c8fe,64',
        'dhcp-host=id:00:03:00:01:54:52:c0:a8:c8:02,[fd8f:1391:3a82:200::c0a8:c802],ost-demo-suite-engine',
        'enable-ra',
        'domain=lago.local',
        'no-resolv',
      ]),
    );
    expect(hosts).toContain('192.168.200.3 ost-demo-suite-host-0 host-0\n');
    expect(hosts).toContain('192.168.201.3 ost-demo-suite-host-0-storage\n');
    expect(hostEnd('0a1b2c3d', 9).length).toBeLessThanOrEqual(15);
    expect(
      sshArgv(
        { host: '192.168.200.2', port: 22, user: 'root', privateKey: '/k', netns: 'ost-0a1b2c3d' },
        'true',
      ).slice(0, 5),
    ).toEqual(['ip', 'netns', 'exec', 'ost-0a1b2c3d', 'ssh']);
  });

  it('refuses to name a namespace from a mount namespace whose /run/netns does not propagate (ip netns exec)', () => {
    // /proc/self/mountinfo lines as captured on this host, and under `ip netns exec`
    const host = '45 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw,discard';
    const inExec = '188 161 254:0 /run/netns /run/netns rw,relatime master:1 - ext4 /dev/vda rw,discard';
    expect(netnsMountPropagation(`27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n${host}\n`)).toBe('shared');
    expect(netnsMountPropagation(inExec)).toBe('slave');
    expect(netnsMountPropagation('27 1 254:0 / / rw,relatime - ext4 /dev/vda rw')).toBe('none');
  });
});
