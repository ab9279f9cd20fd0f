// The trust boundary at an OST suite's deployment dir: who owns it, what ost writes there (as the owner),
// what it removes, and which env records root reads back. Run as root (as CI does), the other user is
// nobody (65534).
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  createDeployment,
  deploymentOwner,
  publishDeployment,
  removeDeployment,
} from '../../src/launcher/env-dir/deployment.js';
import type { EnvRecord } from '../../src/launcher/env-dir/record.js';
import { writeRecord } from '../../src/launcher/env-dir/record.js';
import { readTrustedRecord, recordProblem } from '../../src/launcher/env-dir/trusted-record.js';
import { tempTree } from '../helpers/sets.js';

const isRoot = process.getuid?.() === 0;
const NOBODY = { uid: 65534, gid: 65534 };
const OWNER = { pid: process.pid, start: '1' };

/** A checkout of nobody's, root's env dir beside it, and a record of an OST suite with one VM. */
function setup() {
  const top = tempTree({});
  chmodSync(top, 0o755);
  const checkout = path.join(top, 'checkout');
  mkdirSync(checkout);
  chownSync(checkout, NOBODY.uid, NOBODY.gid);
  const workdir = path.join(top, 'envs', 'abcd1234');
  for (const sub of ['logs', 'keys']) mkdirSync(path.join(workdir, sub), { recursive: true });
  const key = path.join(workdir, 'keys', 'debian12_id_rsa');
  writeFileSync(key, 'PRIVATE\n', { mode: 0o600 });
  const victim = path.join(top, 'victim');
  mkdirSync(victim, { mode: 0o700 });
  const deployment = path.join(checkout, 'deployment');
  const r = {
    version: 1,
    id: 'abcd1234',
    suite: 's',
    source: '',
    kind: 'ost-json',
    ostRepo: checkout,
    ipMode: 'dual',
    status: 'starting',
    owner: OWNER,
    created: '',
    uri: 'qemu:///system',
    workdir,
    deployment: { dir: deployment, ...NOBODY },
    overlayDir: '/dev/shm/ost/abcd1234',
    domainType: 'qemu',
    networks: [],
    vms: [
      {
        name: 'engine',
        hostname: 'ost-s-engine',
        hostsAddress: 'fd8f::2',
        key,
        overlay: '/dev/shm/ost/abcd1234/engine.qcow2',
        consoleLog: path.join(workdir, 'logs/engine'),
        disks: [],
        image: {
          ref: 'debian12-engine-installed',
          path: '/usr/share/ost-images/debian12-engine-installed.qcow2',
        },
      },
    ],
    timings: {},
  } as unknown as EnvRecord;
  return { top, checkout, deployment, workdir, key, victim, r };
}

describe.skipIf(!isRoot)('an OST deployment dir, written as its owner', () => {
  it('belongs to the sudo user, else to the owner of the nearest dir above it', async () => {
    const { checkout, top } = setup();
    expect(await deploymentOwner(path.join(checkout, 'deployment'))).toEqual(NOBODY);
    expect(await deploymentOwner(path.join(checkout, 'a/b/deployment'))).toEqual(NOBODY);
    expect(await deploymentOwner(path.join(top, 'deployment'), { uid: 1000, gid: 1000 })).toEqual({
      uid: 1000,
      gid: 1000,
    });
    // root's own, in a root-owned tree: root's; under a folder others can write (not sticky): refused
    expect(await deploymentOwner(path.join(top, 'deployment'))).toEqual({ uid: 0, gid: 0 });
    const open = path.join(top, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    await expect(deploymentOwner(path.join(open, 'deployment'))).rejects.toThrow(/writable by other users/);
    // a link on the way leads to whose dir it really is
    symlinkSync(checkout, path.join(top, 'via-link'));
    expect(await deploymentOwner(path.join(top, 'via-link/deployment'))).toEqual(NOBODY);
  });

  it("is made, filled and removed by the owner: theirs, and a dir swapped for a link to root's gets nothing", async () => {
    const { deployment, key, victim, r, workdir } = setup();
    await createDeployment(r, OWNER, [{ from: key, to: path.join(deployment, 'keys/debian12_id_rsa') }]);
    await publishDeployment(r);
    for (const f of ['', '.ost-env', 'keys', 'keys/debian12_id_rsa', 'hosts', 'env.sh', 'logs']) {
      const st = lstatSync(path.join(deployment, f));
      expect([st.uid, st.gid], f).toEqual([NOBODY.uid, NOBODY.gid]);
    }
    expect(lstatSync(path.join(deployment, 'keys/debian12_id_rsa')).mode & 0o777).toBe(0o600);
    expect(readlinkSync(path.join(deployment, 'logs'))).toBe(path.join(workdir, 'logs'));
    // what the harness reads names the deployment dir and the owner's copy of the key
    expect(readFileSync(path.join(deployment, 'hosts'), 'utf8')).toContain(
      `ansible_ssh_private_key_file=${path.join(deployment, 'keys/debian12_id_rsa')} `,
    );
    expect(readFileSync(path.join(deployment, 'env.sh'), 'utf8')).toContain(
      `export OST_DEPLOYMENT='${deployment}'\n`,
    );
    // an existing deployment dir is refused, as ost_init does
    await expect(createDeployment(r, OWNER, [])).rejects.toThrow(/already exists/);
    // the owner swaps the dir for a link to a root-only dir: root's next write gets nothing there
    renameSync(deployment, `${deployment}.real`);
    symlinkSync(victim, deployment);
    await expect(publishDeployment(r)).rejects.toThrow(/uid 65534/);
    expect(readdirSync(victim)).toEqual([]);
    // and teardown removes neither the link's target nor a dir that is not the env's
    expect(await removeDeployment(deployment, r.id)).toEqual([]);
    expect(existsSync(victim)).toBe(true);
    writeFileSync(path.join(victim, '.ost-env'), `${r.id} 1 1\n`);
    expect(await removeDeployment(deployment, r.id)).toEqual([]);
    expect(existsSync(victim)).toBe(true);
    // the real one, the env's by its marker, goes (as its owner)
    expect(await removeDeployment(`${deployment}.real`, r.id)).toEqual([`${deployment}.real`]);
    expect(existsSync(`${deployment}.real`)).toBe(false);
  });
});

describe('env records read back', () => {
  it('trusts only a sound record of our own in a real dir nobody else can write', async () => {
    const { r, workdir } = setup();
    r.deployment = undefined;
    await writeRecord(r);
    expect((await readTrustedRecord(workdir))?.id).toBe('abcd1234');
    // a record naming a file outside the env's dirs is not one to act on
    const bad = { ...r, vms: [{ ...r.vms[0], consoleLog: '/etc/shadow' }] } as EnvRecord;
    expect(recordProblem(bad, workdir)).toMatch(/outside the env's own dirs/);
    await writeRecord(bad);
    expect(await readTrustedRecord(workdir)).toBeUndefined();
    const outside = { ...r, vms: [{ ...r.vms[0], name: '../x' }] } as EnvRecord;
    expect(recordProblem(outside, workdir)).toMatch(/VM name/);
    await writeRecord(r);
    // writable by others, or reached through a link: not trusted
    chmodSync(path.join(workdir, 'env.json'), 0o666);
    expect(await readTrustedRecord(workdir)).toBeUndefined();
    chmodSync(path.join(workdir, 'env.json'), 0o644);
    const link = path.join(path.dirname(workdir), 'linked');
    symlinkSync(workdir, link);
    expect(await readTrustedRecord(link)).toBeUndefined();
    if (isRoot) {
      chownSync(path.join(workdir, 'env.json'), NOBODY.uid, NOBODY.gid);
      expect(await readTrustedRecord(workdir)).toBeUndefined();
    }
  });
});
