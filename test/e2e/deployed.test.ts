// Deployed images (issue 29) on real libvirt in a network namespace, on the shared debian12 set (its
// build dir and layer RPMs linked, so nothing is written into the shared cache): a one-VM suite whose deploy
// script leaves evidence (a counter of how often it ran, the address it ran at, an enabled service, bytes on
// an extra disk) and whose host bootstrap marks the guest over SSH is deployed by `ost build-images
// --deployed --publish`, committed as its deployed layers and published as
// ost-images-debian12-<suite>-deployed pinned to the layers' releases; dnf installs it into a root and `ost
// up --deployed --checkpoint-cache` starts from there (evidence there, counter still 1, no deploy script
// run) and checkpoints it; a second env from it while the first holds the deploy's /24 comes up isolated
// with the same evidence; the next cached run restores the checkpoint; a second build with nothing changed
// builds and publishes nothing; a changed deploy script makes them stale: a clear error naming the script,
// and --deployed=auto plans a run-time deploy; a deploy that fails publishes no deployed package and exits 4,
// the repository still serving the last one.
import {
  chmodSync,
  copyFileSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../src/core/exec.js';
import type { EnvRecord } from '../../src/launcher/env-dir/record.js';
import type { CacheOutcome } from '../../src/launcher/up/checkpoint-cache.js';
import { dnfInstallArgv } from '../../src/tools/dnf.js';
import { runArgv } from '../../src/tools/run-tool.js';
import { REPO_ROOT } from '../helpers/sets.js';
import { ensureBuilt, isRoot, OST } from './helpers.js';
import { LibvirtNetns } from './netns.js';
import { type SharedImages, sharedImages } from './shared-images.js';

const MIN = 60_000;
const work = isRoot ? mkdtempSync('/var/tmp/ost-e2e-deployed-') : '/nonexistent';
const stateDir = path.join(work, 'state');
const overlayDir = `/dev/shm/ost-e2e-dep-${process.pid}`;
const env = {
  OST_STATE_DIR: stateDir,
  OST_OVERLAY_DIR: overlayDir,
  OST_CHECKPOINT_DIR: path.join(work, 'checkpoints'),
};
const out = path.join(work, 'out');
const repo = path.join(work, 'repo');
// where dnf installs the deployed package (and, by its pins, the layers it sits on)
const root = path.join(work, 'root');
const deployedPkg = 'ost-images-debian12-demo-d-deployed';
const suiteDir = path.join(work, 'suite');
const envFile = path.join(suiteDir, 'ost-env.yaml');
const script = path.join(suiteDir, 'deploy.sh');
let shared: SharedImages;
let ns: LibvirtNetns;

/** ost in the test's network namespace (entered alone: an isolated env's namespace is seen outside it). */
async function ostNs(args: string[], timeoutMs = 30 * MIN) {
  const r = await ns.enter([OST, ...args], { allowFailure: true, env, cwd: REPO_ROOT, timeoutMs });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

/** The deploy script: real work, and evidence of it in the guest and on its extra disk. */
function writeScript(extra = ''): void {
  writeFileSync(
    script,
    [
      '#!/bin/bash',
      'set -euo pipefail',
      'n=$(cat /var/lib/ost-deploy-count 2>/dev/null || echo 0); echo $((n + 1)) > /var/lib/ost-deploy-count',
      "ip -4 -o addr show dev eth0 | awk '{print $4}' > /etc/ost-deployed-address",
      'printf \'[Unit]\\nDescription=deployed\\n[Service]\\nType=oneshot\\nRemainAfterExit=yes\\nExecStart=/bin/sh -c "date > /run/ost-deployed-demo"\\n[Install]\\nWantedBy=multi-user.target\\n\' > /etc/systemd/system/ost-deployed-demo.service',
      'systemctl enable --now ost-deployed-demo.service',
      // the extra disk: the one disk that is not the root disk (on virtio-scsi: sda in the guest)
      'disk=/dev/$(lsblk -dno NAME,TYPE | awk \'$2 == "disk" && $1 != "vda" { print $1; exit }\')',
      'echo deployed-bytes | dd of="$disk" conv=fsync status=none',
      extra,
      '',
    ].join('\n'),
  );
}

/** What the guest says of the deploy: counter, the address it ran at, the service, the extra disk. */
async function evidence(r: EnvRecord) {
  const s = await ostNs(
    [
      'ssh',
      'vm',
      '--env',
      r.id,
      '--',
      'cat /var/lib/ost-deploy-count /etc/ost-deployed-address /etc/ost-bootstrapped; systemctl is-active ost-deployed-demo; test -s /run/ost-deployed-demo && echo ran; head -c 14 /dev/$(lsblk -dno NAME,TYPE | awk \'$2 == "disk" && $1 != "vda" { print $1; exit }\'); echo',
    ],
    2 * MIN,
  );
  const [count, address, bootstrapped, active, ran, disk] = s.stdout.split('\n');
  return { count, address, bootstrapped, active, ran, disk };
}

describe.skipIf(!isRoot)('deployed images on real libvirt in a network namespace', () => {
  beforeAll(async () => {
    ensureBuilt();
    chmodSync(work, 0o755);
    shared = await sharedImages();
    // the shared build dir and its layer RPMs, linked file by file: the deployed layers go beside the
    // images, their RPM beside the layers' (which are packed already and reused)
    for (const sub of ['', 'rpms']) {
      mkdirSync(path.join(out, sub), { mode: 0o755 });
      for (const f of readdirSync(path.join(shared.out, sub))) {
        const from = path.join(shared.out, sub, f);
        if (!statSync(from).isFile() || f === '.lock') continue;
        try {
          linkSync(from, path.join(out, sub, f));
        } catch {
          copyFileSync(from, path.join(out, sub, f));
        }
      }
    }
    mkdirSync(suiteDir, { recursive: true });
    writeFileSync(
      envFile,
      [
        'suites:',
        '  demo-d:',
        '    networks:',
        '      management: { management: true, forward: nat }',
        '    vms:',
        '      vm:',
        '        image: debian12-engine-installed',
        '        memory: 768',
        '        nics: [management]',
        '        disks: [{ name: sdb, size: 64M }]',
        '        deployScripts: [deploy.sh]',
        // the suite's bootstrap on the host, after the VM's deploy: with env.sh sourced, over the env's SSH
        '    hostDeployScripts: [bootstrap.sh]',
        '',
      ].join('\n'),
    );
    writeScript();
    writeFileSync(
      path.join(suiteDir, 'bootstrap.sh'),
      [
        '#!/bin/bash',
        'set -euo pipefail',
        'ssh -F "$OST_DEPLOYMENT/ssh_config" vm "echo bootstrapped-$SUITE > /etc/ost-bootstrapped"',
        '',
      ].join('\n'),
    );
    ns = await LibvirtNetns.start(`ost-e2e-dep-${process.pid}`);
  }, 120 * MIN);

  afterAll(async () => {
    // a failed case may leave envs up: an isolated one's namespace and dnsmasq outlive libvirtd
    if (ns) {
      const left = await ostNs(['list', '--json']);
      for (const e of JSON.parse(left.stdout || '[]') as { id: string }[]) await ostNs(['down', e.id]);
    }
    await ns?.stop();
    rmSync(overlayDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }, 5 * MIN);

  const build = () =>
    ostNs([
      'build-images',
      shared.set,
      '--out',
      out,
      // the upstream state the shared build recorded: every layer of the set is cached
      '--offline',
      '--deployed',
      'demo-d',
      '--env-file',
      envFile,
      '--publish',
      repo,
      '--json',
    ]);

  /** `ost up demo-d` on the images dnf installed into `root`, with `flags`. */
  const upDemo = (...flags: string[]) =>
    ostNs(['up', 'demo-d', '--env-file', envFile, '--images-root', root, ...flags]);

  /** The release of `name` in the repository (its one RPM there). */
  const releaseIn = (name: string) => {
    const files = readdirSync(path.join(repo, 'Packages')).filter((f) =>
      new RegExp(`^${name}-1-[0-9.]+\\.noarch\\.rpm$`).test(f),
    );
    expect(files, name).toHaveLength(1);
    return (files[0] as string).slice(name.length + 3, -'.noarch.rpm'.length);
  };

  it(
    'build-images --deployed deploys the suite once, commits and publishes its layers pinned to their images; up --deployed starts from the installed package, deploying nothing',
    async () => {
      const b = await build();
      expect(b.code, b.stderr).toBe(0);
      const doc = JSON.parse(b.stdout) as {
        layers: { layer: string; status: string }[];
        deployed: { suite: string; status: string; manifest: string }[];
        published: { rpms: { name: string; built: boolean }[]; added: string[] };
      };
      // the set's own layers were all there already
      expect(doc.layers.every((l) => l.status === 'cached')).toBe(true);
      expect(doc.deployed).toEqual([
        expect.objectContaining({
          suite: 'demo-d',
          status: 'built',
          manifest: path.join(out, 'debian12-demo-d-deployed.json'),
        }),
      ]);
      const layer = path.join(out, 'debian12-demo-d-vm-deployed.qcow2');
      const info = JSON.parse((await run('qemu-img', ['info', '--output=json', layer])).stdout);
      // on its image by relative name, read-only; its extra disk standalone
      expect(info['backing-filename']).toBe('debian12-engine-installed.qcow2');
      expect(statSync(layer).mode & 0o777).toBe(0o444);
      const disk = JSON.parse(
        (
          await run('qemu-img', [
            'info',
            '--output=json',
            path.join(out, 'debian12-demo-d-vm-deployed-sdb.qcow2'),
          ])
        ).stdout,
      );
      expect(disk['backing-filename']).toBeUndefined();
      expect(readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
      // the deploy's env is gone
      expect(await ns.ostObjects('domain')).toEqual([]);
      expect(await ns.ostObjects('network')).toEqual([]);

      // published with the set: the only RPM packed now, pinned to the very engine-installed the repo serves
      expect(doc.published.rpms.filter((r) => r.built).map((r) => r.name)).toEqual([deployedPkg]);
      const rpm = path.join(repo, 'Packages', `${deployedPkg}-1-${releaseIn(deployedPkg)}.noarch.rpm`);
      const requires = (await run('rpm', ['-qp', '--requires', rpm])).stdout.split('\n');
      expect(requires).toContain(
        `ost-images-debian12-engine-installed = 1-${releaseIn('ost-images-debian12-engine-installed')}`,
      );
      expect((await run('rpm', ['-qp', '--scripts', rpm])).stdout).toBe('');
      // dnf installs it with the layers it sits on
      mkdirSync(root, { mode: 0o755 });
      await runArgv(
        dnfInstallArgv(
          { installRoot: root, repos: { ost: `file://${repo}` }, gpgcheck: false, cacheDir: `${root}-dnf` },
          [deployedPkg],
        ),
        { timeoutMs: 20 * MIN },
      );
      const installed = path.join(root, 'usr/share/ost-images');
      expect(readdirSync(installed)).toEqual(
        expect.arrayContaining([
          'debian12-engine-installed.qcow2',
          'debian12-demo-d-vm-deployed.qcow2',
          'debian12-demo-d-vm-deployed-sdb.qcow2',
          'debian12-demo-d-deployed.json',
        ]),
      );

      // with a memory checkpoint on top: nothing cached yet, so it boots the deployed layers and checkpoints
      const u = await upDemo('--deployed', '--checkpoint-cache', '--json');
      expect(u.code, u.stderr).toBe(0);
      const r = JSON.parse(u.stdout) as EnvRecord & { checkpointCache: CacheOutcome };
      expect(r.checkpointCache).toMatchObject({
        hit: false,
        name: expect.stringMatching(/^cache-demo-d-frompkg-/),
      });
      expect(r.deployed).toBe(true);
      expect(r.deployedFrom?.manifest).toBe(path.join(installed, 'debian12-demo-d-deployed.json'));
      expect(r.timings.deploy).toBeUndefined();
      expect(r.vms[0]?.overlayBase).toBe(path.join(installed, 'debian12-demo-d-vm-deployed.qcow2'));
      const e = await evidence(r);
      // deployed once, at the address it has now (the deploy's subnet), its service up after a boot, its disk
      expect(e.count).toBe('1');
      expect(e.address?.split('/')[0]).toBe(r.vms[0]?.address);
      // the host's bootstrap ran after the deploy, and what it did is in the deployed layer
      expect(e.bootstrapped).toBe('bootstrapped-demo-d');
      expect(e.active).toBe('active');
      expect(e.ran).toBe('ran');
      expect(e.disk).toBe('deployed-bytes');

      // a second env from the same package while the first holds the deploy's /24: isolated, same evidence
      const u2 = await upDemo('--deployed', '--json');
      expect(u2.code, u2.stderr).toBe(0);
      expect(u2.stderr).toContain('the env starts with its networks in a namespace of its own (isolated)');
      const r2 = JSON.parse(u2.stdout) as EnvRecord;
      expect(r2.netns).toBe(`ost-${r2.id}`);
      expect(r2.networks.map((n) => n.subnet)).toEqual(r.networks.map((n) => n.subnet));
      expect(r2.vms[0]?.nics.map((n) => n.mac)).toEqual(r.vms[0]?.nics.map((n) => n.mac));
      const e2 = await evidence(r2);
      expect(e2.count).toBe('1');
      expect(e2.address).toBe(e.address);
      expect(e2.active).toBe('active');
      expect(e2.disk).toBe('deployed-bytes');
      for (const id of [r2.id, r.id]) {
        const d = await ostNs(['down', id]);
        expect(d.code, d.stderr).toBe(0);
      }
      expect(await ns.ostObjects('domain')).toEqual([]);

      // the next run restores the checkpoint of the deployed env: no boot, the same evidence
      const c = await upDemo('--deployed', '--checkpoint-cache', '--json');
      expect(c.code, c.stderr).toBe(0);
      const rc = JSON.parse(c.stdout) as EnvRecord & { checkpointCache: CacheOutcome };
      expect(rc.checkpointCache).toMatchObject({ hit: true, name: r.checkpointCache.name });
      expect(rc.checkpoint?.name).toBe(r.checkpointCache.name);
      const ec = await evidence(rc);
      expect([ec.count, ec.bootstrapped, ec.active, ec.disk]).toEqual([
        '1',
        'bootstrapped-demo-d',
        'active',
        'deployed-bytes',
      ]);
      const dc = await ostNs(['down', rc.id]);
      expect(dc.code, dc.stderr).toBe(0);

      // nothing changed: nothing built, nothing published
      const again = await build();
      expect(again.code, again.stderr).toBe(0);
      const second = JSON.parse(again.stdout) as {
        deployed: { status: string }[];
        published: { unchanged: boolean };
      };
      expect(second.deployed[0]?.status).toBe('cached');
      expect(second.published.unchanged).toBe(true);
    },
    30 * MIN,
  );

  it(
    'a changed deploy script makes them stale: --deployed names the script, --deployed=auto plans a run-time deploy; a failing deploy publishes none',
    async () => {
      writeScript('echo changed > /etc/ost-changed');
      const u = await upDemo('--deployed');
      expect(u.code).toBe(1);
      expect(u.stderr).toContain('deploy script deploy.sh of vm changed');
      expect(u.stderr).toContain('--deployed=auto');
      expect(await ns.ostObjects('domain')).toEqual([]);
      // --deployed=auto deploys at run time instead: its plan (the run-time deploy itself is `ost up
      // --deploy`'s, run by the build above and the launcher e2e; one boot less here)
      const a = await upDemo('--deployed=auto', '--dry-run');
      expect(a.code, a.stderr).toBe(0);
      expect(a.stdout).toContain(
        'deploy script deploy.sh of vm changed: deploying at run time (--deployed=auto)',
      );
      expect(a.stdout).toContain(`vm: ${script} to bash -s over SSH`);
      expect(a.stdout).toContain(
        `overlay on ${path.join(root, 'usr/share/ost-images/debian12-engine-installed.qcow2')}`,
      );
      expect(a.stdout).not.toContain('deployed.qcow2');
      expect(await ns.ostObjects('domain')).toEqual([]);

      // a night whose deploy fails: the suite named, no deployed package published, the last one still served
      const before = releaseIn(deployedPkg);
      writeScript('echo the deploy breaks >&2; exit 3');
      const f = await build();
      // exit 4: the set is built and published, a suite's deploy is not
      expect(f.code, f.stderr).toBe(4);
      expect(f.stderr).toContain('the deploy of suite demo-d failed');
      expect(f.stderr).toContain('the repository still serves the last ones');
      expect(releaseIn(deployedPkg)).toBe(before);
      expect(readdirSync(out)).not.toContain('debian12-demo-d-deployed.json');
      expect(await ns.ostObjects('domain')).toEqual([]);
    },
    30 * MIN,
  );
});
