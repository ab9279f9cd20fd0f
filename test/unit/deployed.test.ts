// Deployed images (issue 29), the pure parts: what deployed layers are made from and their key, the words
// for what differs, the manifest read back, the plan of an up from them, and the flag rules.
import { chmodSync, chownSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { OstEvent } from '../../src/core/events.js';
import { self } from '../../src/core/process.js';
import { runHostDeployScripts } from '../../src/launcher/deploy.js';
import { loadEnvironment } from '../../src/launcher/env/load.js';
import {
  type DeployedManifest,
  deployedInputs,
  deployedKey,
  inputDifferences,
  readDeployedManifest,
} from '../../src/launcher/images/deployed.js';
import { imageKey, type ResolvedImage } from '../../src/launcher/images/resolve.js';
import { layoutEnv } from '../../src/launcher/net/layout.js';
import { leaseSubnets } from '../../src/launcher/net/leases.js';
import { checkDeployedLayout, deployedIsolation } from '../../src/launcher/up/deployed-start.js';
import { planUp } from '../../src/launcher/up/plan.js';
import { requestProblems, willDeploy } from '../../src/launcher/up/request.js';
import { planInputs } from '../helpers/plan-inputs.js';
import { REPO_ROOT, tempTree } from '../helpers/sets.js';

const KEY = (c: string) => c.repeat(64);

/** demo-suite on images in `dir` (a manifest with `key` beside each), its deploy script copied there. */
function suiteIn(dir: string, imageKeyChar = 'a', build = 'build-1') {
  const env = loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'demo-suite');
  const images = new Map<string, ResolvedImage>();
  for (const vm of env.vms) {
    const ref = vm.image.kind === 'package' ? `${vm.image.distro}-${vm.image.layer}` : 'x';
    const file = path.join(dir, `${ref}.qcow2`);
    writeFileSync(path.join(dir, `${ref}.json`), JSON.stringify({ key: KEY(imageKeyChar), buildId: build }));
    images.set(imageKey(vm), { ref, path: file, chain: [file], virtualSize: 1, sshCredential: true });
  }
  return { env, images };
}

describe('what deployed layers are made from', () => {
  it('covers the images, the suite, the deploy scripts and ost; each change says which', async () => {
    const dir = tempTree({});
    const { env, images } = suiteIn(dir);
    const a = await deployedInputs(env, images, 'ost-1/format-4');
    expect(await deployedInputs(env, images, 'ost-1/format-4')).toEqual(a);
    expect(Object.keys(a.images)).toEqual(['engine', 'host-0']);
    expect(a.scripts.engine?.[0]?.script).toBe('deploy-scripts/demo-suite.sh');
    // another build of the images
    const other = suiteIn(tempTree({}), 'b');
    const b = await deployedInputs(env, other.images, 'ost-1/format-4');
    expect(deployedKey(b)).not.toBe(deployedKey(a));
    expect(inputDifferences(a, b)).toEqual([
      `engine's image debian12-engine-installed is another build (key ${KEY('b').slice(0, 12)}, deployed on ${KEY('a').slice(0, 12)})`,
      `host-0's image debian12-host-installed is another build (key ${KEY('b').slice(0, 12)}, deployed on ${KEY('a').slice(0, 12)})`,
    ]);
    // the same key built again: other bytes under the deployed overlay
    const rebuilt = suiteIn(tempTree({}), 'a', 'build-2');
    const r = await deployedInputs(env, rebuilt.images, 'ost-1/format-4');
    expect(deployedKey(r)).not.toBe(deployedKey(a));
    expect(inputDifferences(a, r)[0]).toBe(
      "engine's image debian12-engine-installed was built again (build build-2, deployed on build build-1): the deployed layer holds changes to the other build's bytes",
    );
    // a deploy script's bytes
    const script = path.join(dir, 'deploy.sh');
    writeFileSync(script, 'echo one\n');
    const withScript = (text: string) => {
      writeFileSync(script, text);
      return {
        ...env,
        vms: env.vms.map((vm) => ({ ...vm, deployScripts: [{ file: script, name: 'deploy.sh' }] })),
      };
    };
    const s1 = await deployedInputs(withScript('echo one\n'), images, 'ost-1/format-4');
    const s2 = await deployedInputs(withScript('echo two\n'), images, 'ost-1/format-4');
    expect(inputDifferences(s1, s2)).toEqual([
      'deploy script deploy.sh of engine changed',
      'deploy script deploy.sh of host-0 changed',
    ]);
    // the suite, and ost
    const bigger = { ...env, vms: env.vms.map((vm) => ({ ...vm, memoryMiB: vm.memoryMiB * 2 })) };
    const c = await deployedInputs(bigger, images, 'ost-2/format-4');
    expect(inputDifferences(a, c)).toEqual([
      'they were made by ost ost-1/format-4, this is ost ost-2/format-4',
      'the suite definition changed (its networks, VMs, sizes, NICs, disks or deploy-script lists)',
    ]);
  });

  it('refuses images without a layer manifest (not ost-built): no key to check them by', async () => {
    const dir = tempTree({});
    const { env, images } = suiteIn(dir);
    const first = [...images.values()][0] as ResolvedImage;
    writeFileSync(first.path.replace(/\.qcow2$/, '.json'), JSON.stringify({ key: KEY('a') }));
    await expect(deployedInputs(env, images, 'v')).rejects.toThrow(
      /has no layer manifest with a key and build id/,
    );
  });
});

describe('the deployed manifest read back', () => {
  const base = (over: Partial<DeployedManifest> = {}) => ({
    version: 1,
    suite: 's',
    distro: 'd',
    key: KEY('c'),
    inputs: {},
    builtAt: 'now',
    timings: {},
    vms: [{ name: 'vm', file: 'd-s-vm-deployed.qcow2', image: { ref: 'd-l', file: 'd-l.qcow2' } }],
    networks: [{ name: 'm', prefix: '192.168.200' }],
    ...over,
  });
  it('is read when well formed, undefined when absent, and refused when it names files elsewhere', async () => {
    const dir = tempTree({});
    const f = path.join(dir, 'm.json');
    expect(await readDeployedManifest(f)).toBeUndefined();
    writeFileSync(f, JSON.stringify(base()));
    expect((await readDeployedManifest(f))?.key).toBe(KEY('c'));
    for (const bad of [
      base({ vms: [{ name: 'vm', file: '../etc/x.qcow2', image: { ref: 'r', file: 'i.qcow2' } }] }),
      base({ vms: [{ name: 'vm', file: 'a.qcow2', image: { ref: 'r', file: '/usr/i.qcow2' } }] }),
      base({ networks: [{ name: 'm', prefix: '192.168.200.0/24' }] }),
      { ...base(), version: 2 },
    ]) {
      writeFileSync(f, JSON.stringify(bad));
      await expect(readDeployedManifest(f)).rejects.toThrow(/is not a deployed-images manifest/);
    }
  });
});

describe('an up from deployed layers', () => {
  it("starts each VM's overlay on its deployed layer, extra disks on theirs, on the deploy's subnets, and deploys nothing", () => {
    const env = loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'demo-suite');
    env.vms[0]?.disks.push({ name: 'sdb', size: '1G', sizeBytes: 2 ** 30, format: 'raw' });
    const layer = (vm: string) => `/usr/share/ost-images/debian12-demo-suite-${vm}-deployed.qcow2`;
    const plan = planUp(
      planInputs(
        env,
        { credential: () => true },
        {
          deploy: false,
          deployed: {
            manifest: '/usr/share/ost-images/debian12-demo-suite-deployed.json',
            key: KEY('d'),
            vms: new Map(
              env.vms.map((vm) => [
                vm.name,
                { root: layer(vm.name), disks: new Map([['sdb', layer(`${vm.name}-sdb`)]]) },
              ]),
            ),
            subnets: new Map(env.networks.map((n, i) => [n.name, `192.168.${210 + i}`])),
            macs: new Map(),
          },
        },
      ),
    );
    expect(plan.deploy).toBe(false);
    for (const vm of plan.vms) {
      expect(vm.overlayBase).toBe(layer(vm.name));
      expect(vm.chain[0]).toBe(layer(vm.name));
      expect(vm.chain[1]).toBe(vm.image.path);
    }
    expect(plan.vms[0]?.disks[0]).toMatchObject({ format: 'qcow2', base: layer('engine-sdb') });
    expect(plan.networks.map((n) => n.fixed)).toEqual(env.networks.map((_n, i) => `192.168.${210 + i}`));
  });

  it('gives each VM the MACs its deploy had, and refuses a layout that would not', () => {
    const env = loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'demo-suite');
    const subnets = new Map(env.networks.map((n, i) => [n.name, `192.168.${210 + i}`]));
    const deployedEnv = layoutEnv(env, 'aaaa1111', subnets, 'ipv4');
    const start = {
      manifest: '/m.json',
      key: KEY('d'),
      vms: new Map(),
      subnets,
      macs: new Map(deployedEnv.vms.map((vm) => [vm.name, vm.nics.map((n) => n.mac)])),
    };
    // another env id, the same subnets: the same MACs
    expect(() => checkDeployedLayout(layoutEnv(env, 'bbbb2222', subnets, 'ipv4'), start)).not.toThrow();
    const other = new Map(env.networks.map((n, i) => [n.name, `192.168.${220 + i}`]));
    expect(() => checkDeployedLayout(layoutEnv(env, 'bbbb2222', other, 'ipv4'), start)).toThrow(
      /\/m\.json: engine's NICs would get .*, the deployed guest has 54:52:c0:a8:d2:02/,
    );
  });

  it("starts isolated as root when another env holds the deploy's /24; says who holds it otherwise", async () => {
    const leases = path.join(tempTree({}), 'leases');
    await leaseSubnets(leases, 'holder01', self(), [{ network: 'management', fixed: '192.168.231' }]);
    const start = {
      manifest: '/m.json',
      key: KEY('d'),
      vms: new Map(),
      subnets: new Map([['management', '192.168.231']]),
      macs: new Map(),
    };
    const said: string[] = [];
    const o = {
      leases,
      uri: 'test:///default',
      reporter: (e: OstEvent) => void said.push('message' in e ? e.message : ''),
    };
    await expect(deployedIsolation(start, { ...o, root: false })).rejects.toThrow(
      'the deployed guests keep the addresses of their deploy, and management (192.168.231.0/24) is held by environment holder01',
    );
    // an OST suite's --ipv6-only SOCKS helper cannot listen in an isolated env's namespace
    await expect(deployedIsolation(start, { ...o, root: true, ipv6Proxy: true })).rejects.toThrow(
      "--ipv6-only's SOCKS helper cannot listen",
    );
    expect(await deployedIsolation(start, { ...o, root: true })).toBe(true);
    expect(said[0]).toContain('the env starts with its networks in a namespace of its own (isolated)');
    // free: not isolated
    expect(
      await deployedIsolation(
        { ...start, subnets: new Map([['management', '192.168.232']]) },
        { ...o, root: false },
      ),
    ).toBe(false);
  });

  it('--deployed excludes --from and --custom-repo, not --checkpoint-cache; --no-wait is fine with it', () => {
    const env = loadEnvironment(path.join(REPO_ROOT, 'ost-env.yaml'), 'demo-suite');
    const msgs = (r: Parameters<typeof requestProblems>[0]) => requestProblems(r).map((p) => p.message);
    expect(msgs({ env, deployed: 'require', from: { name: 'ck' } })).toEqual([
      '--deployed starts from deployed images, --from from a checkpoint',
    ]);
    expect(msgs({ env, deployed: 'require', customRepos: ['/r'] })).toHaveLength(1);
    // a memory checkpoint on top of the deployed layers
    expect(msgs({ env, deployed: 'auto', checkpointCache: true })).toEqual([]);
    expect(msgs({ env, deployed: 'require', wait: false })).toEqual([]);
    // auto may deploy at run time, which --no-wait cannot
    expect(msgs({ env, deployed: 'auto', wait: false })).toHaveLength(1);
  });
});

describe("a suite's host deploy scripts", () => {
  it('are read from the env file beside it, refused outside its folder, and in the deployed key', async () => {
    const dir = tempTree({
      'ost-env.yaml': [
        'suites:',
        '  s:',
        '    networks: { management: { management: true } }',
        '    vms: { vm: { image: debian12-engine-installed, nics: [management] } }',
        '    hostDeployScripts: [bootstrap.sh]',
        '  bad:',
        '    networks: { management: { management: true } }',
        '    vms: { vm: { image: debian12-engine-installed, nics: [management] } }',
        '    hostDeployScripts: [../elsewhere.sh]',
        '',
      ].join('\n'),
      'bootstrap.sh': 'echo one\n',
    });
    const env = loadEnvironment(path.join(dir, 'ost-env.yaml'), 's');
    expect(env.hostDeployScripts).toEqual([{ file: path.join(dir, 'bootstrap.sh'), name: 'bootstrap.sh' }]);
    expect(willDeploy(env, undefined)).toBe(true);
    expect(() => loadEnvironment(path.join(dir, 'ost-env.yaml'), 'bad')).toThrow(
      /suites\.bad\.hostDeployScripts\[0\]: .*relative to ost-env\.yaml's folder/,
    );
    const images = new Map<string, ResolvedImage>();
    const file = path.join(dir, 'debian12-engine-installed.qcow2');
    writeFileSync(
      path.join(dir, 'debian12-engine-installed.json'),
      JSON.stringify({ key: KEY('a'), buildId: 'b' }),
    );
    images.set(imageKey(env.vms[0] as never), {
      ref: 'debian12-engine-installed',
      path: file,
      chain: [file],
      virtualSize: 1,
      sshCredential: true,
    });
    const a = await deployedInputs(env, images, 'v');
    writeFileSync(path.join(dir, 'bootstrap.sh'), 'echo two\n');
    const b = await deployedInputs(env, images, 'v');
    expect(deployedKey(a)).not.toBe(deployedKey(b));
    expect(inputDifferences(a, b)).toEqual(['host deploy script bootstrap.sh changed']);
  });

  it("run in the env file's folder with the env's env.sh sourced; a failing one names itself and its output", async () => {
    const dir = tempTree({
      'work/env.sh': 'export OST_TEST_FROM_ENV_SH=engine-at-192.168.200.2\n',
      'suite/ost-env.yaml': '',
      'suite/bootstrap.sh': 'echo "$OST_TEST_FROM_ENV_SH $PWD" > "$PWD/ran"\n',
      'suite/fails.sh': 'echo the bootstrap test failed >&2; exit 5\n',
    });
    const env = {
      suite: 's',
      file: path.join(dir, 'suite/ost-env.yaml'),
      kind: 'ost-env' as const,
      networks: [],
      vms: [],
      hostDeployScripts: [{ file: path.join(dir, 'suite/bootstrap.sh'), name: 'bootstrap.sh' }],
    };
    await runHostDeployScripts(env, path.join(dir, 'work'));
    expect(readFileSync(path.join(dir, 'suite/ran'), 'utf8')).toBe(
      `engine-at-192.168.200.2 ${path.join(dir, 'suite')}\n`,
    );
    const failing = {
      ...env,
      hostDeployScripts: [{ file: path.join(dir, 'suite/fails.sh'), name: 'fails.sh' }],
    };
    await expect(runHostDeployScripts(failing, path.join(dir, 'work'))).rejects.toThrow(
      /host deploy script .*fails\.sh failed:\n {2}\| the bootstrap test failed/,
    );
    expect(readFileSync(path.join(dir, 'work/deploy-host.log'), 'utf8')).toContain(
      'the bootstrap test failed',
    );
    // run with ost's rights: a script another user could change is refused, and nothing runs
    rmSync(path.join(dir, 'suite/ran'));
    chmodSync(path.join(dir, 'suite/bootstrap.sh'), 0o666);
    await expect(runHostDeployScripts(env, path.join(dir, 'work'))).rejects.toThrow(
      /bootstrap\.sh can be changed by its group or by anyone, and ost runs it as uid/,
    );
    chmodSync(path.join(dir, 'suite/bootstrap.sh'), 0o644);
    chownSync(path.join(dir, 'suite'), 65534, 65534);
    await expect(runHostDeployScripts(env, path.join(dir, 'work'))).rejects.toThrow(
      /suite is owned by uid 65534/,
    );
    expect(existsSync(path.join(dir, 'suite/ran'))).toBe(false);
    // the one who ran ost through sudo may own it
    await runHostDeployScripts(env, path.join(dir, 'work'), undefined, [0, 65534]);
    expect(existsSync(path.join(dir, 'suite/ran'))).toBe(true);
  });
});
