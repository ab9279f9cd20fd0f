// `ost build-images <set> --deployed <suite>`: the suite brought up from the set's own images (the build
// dir), deployed as `ost up` deploys it, every guest shut down cleanly, and each VM's disks committed beside
// the images as its deployed layers (the root overlay backed by its image by relative name, extra disks as
// standalone qcow2), with a manifest that says what they were made from (images/deployed.ts). Unchanged
// inputs build nothing. The env is taken down whatever happens; a failed build leaves no deployed file.
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../../core/errors.js';
import { type Reporter, step } from '../../core/events.js';
import { atomicWriteFile } from '../../core/fsutil.js';
import { sleep } from '../../core/timers.js';
import { check, convertToQcow2Argv, renameBackingArgv } from '../../tools/qemu-img.js';
import { runArgv } from '../../tools/run-tool.js';
import { virsh } from '../../tools/virsh.js';
import { discoverEnvs } from '../env-dir/discover.js';
import type { EnvRecord, VmRecord } from '../env-dir/record.js';
import {
  type DeployedManifest,
  type DeployedVm,
  deployedInputs,
  deployedKey,
  deployedLayerName,
  deployedManifestName,
  readDeployedManifest,
} from '../images/deployed.js';
import { qemuIdentity } from '../images/qemu-user.js';
import { resolveImages } from '../images/resolve.js';
import { teardown } from '../teardown.js';
import type { UpOptions } from '../up/options.js';
import { up } from '../up/run.js';

export interface DeployedBuildOptions {
  /** The up of the suite: its env, and everything `ost up` needs; its images are taken from `out`. */
  up: UpOptions;
  /** The set's build dir: the images, and where the deployed layers go. */
  out: string;
  distro: string;
  /** ost's version, as `ost up --deployed` will check it. */
  ost: string;
  reporter: Reporter;
  signal?: AbortSignal;
}

export interface DeployedBuildResult {
  suite: string;
  status: 'built' | 'cached';
  manifest: string;
  key: string;
  durationMs: number;
}

/**
 * `build-images --deployed`: the set was built (and published, without their deployed packages) but the
 * deploy of these suites failed. Exit 4, so a nightly job can tell it from a set that was not published.
 */
export class DeployFailedError extends OstError {
  constructor(
    readonly failed: { suite: string; error: string }[],
    published: boolean,
  ) {
    super(
      `the deploy of ${failed.map((f) => `suite ${f.suite}`).join(', ')} failed: ${failed.map((f) => f.error).join('; ')}`,
      published
        ? 'the set was published without their deployed packages: the repository still serves the last ones, pinned to the images they were made on'
        : 'fix the deploy and run build-images again (the layers are built and cached)',
    );
    this.name = 'DeployFailedError';
  }
}

/** How long a guest may take to power off after `virsh shutdown`. */
const SHUTDOWN_MS = 5 * 60_000;

/** Build (or find up to date) the deployed layers of one suite. */
export async function buildDeployed(o: DeployedBuildOptions): Promise<DeployedBuildResult> {
  const started = Date.now();
  const env = o.up.env;
  const manifestFile = path.join(o.out, deployedManifestName(o.distro, env.suite));
  const resolving = Date.now();
  const images = await resolveImages(env.vms, { imagesDir: o.out, qemu: qemuIdentity(), signal: o.signal });
  const resolved = { images, ms: Date.now() - resolving };
  const inputs = await deployedInputs(env, images, o.ost);
  const key = deployedKey(inputs);
  const was = await readDeployedManifest(manifestFile).catch(() => undefined);
  const files = (m: DeployedManifest) =>
    m.vms.flatMap((vm) => [vm.file, ...(vm.disks ?? []).map((d) => d.file)]);
  if (was?.key === key && files(was).every((f) => existsSync(path.join(o.out, f))))
    return {
      suite: env.suite,
      status: 'cached',
      manifest: manifestFile,
      key,
      durationMs: Date.now() - started,
    };
  // stale from here on: a failure below leaves no manifest naming half-replaced layers
  if (was) await fs.rm(manifestFile, { force: true });
  const rec = await up({
    ...o.up,
    images: { ...o.up.images, imagesDir: o.out },
    resolved,
    deploy: true,
    wait: true,
  });
  try {
    await step(o.reporter, 'shutdown', `shut ${rec.vms.length} VMs down`, () =>
      Promise.all(rec.vms.map((vm) => shutDown(rec.uri, vm))),
    );
    const vms = await step(o.reporter, 'commit', `commit ${rec.vms.length} deployed layers`, () =>
      Promise.all(rec.vms.map((vm) => commitVm(o, env.suite, vm))),
    );
    const manifest: DeployedManifest = {
      version: 1,
      suite: env.suite,
      distro: o.distro,
      key,
      inputs,
      builtAt: new Date().toISOString(),
      timings: { ...rec.timings, build: Date.now() - started },
      vms,
      networks: rec.networks.map((n) => ({ name: n.name, prefix: `192.168.${n.subnet}` })),
    };
    // the manifest last: until it names them, the new layers are not used
    await atomicWriteFile(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`, 0o644);
  } finally {
    await takeDown(rec, o.up.stateRoot, o.reporter);
  }
  return { suite: env.suite, status: 'built', manifest: manifestFile, key, durationMs: Date.now() - started };
}

/** ACPI power-off, then wait until the (transient) domain is gone or shut off. */
async function shutDown(uri: string, vm: VmRecord): Promise<void> {
  await virsh(uri, ['shutdown', vm.libvirtName]);
  const deadline = Date.now() + SHUTDOWN_MS;
  for (;;) {
    const r = await virsh(uri, ['domstate', vm.libvirtName], { allowFailure: true });
    if (r.exitCode !== 0 || /shut off/.test(r.stdout)) return;
    if (Date.now() > deadline)
      throw new OstError(
        `${vm.name} did not power off within ${SHUTDOWN_MS / 1000} s of virsh shutdown`,
        `look at its console log ${vm.consoleLog}`,
      );
    await sleep(1000);
  }
}

/** One VM's disks into the build dir: `.tmp`, checked, read-only, then renamed into place. */
async function commitVm(o: DeployedBuildOptions, suite: string, vm: VmRecord): Promise<DeployedVm> {
  const image = path.basename(vm.image.path);
  if (path.dirname(vm.image.path) !== path.resolve(o.out) || vm.image.custom)
    throw new OstError(
      `${vm.name} does not run on an image of ${o.out}: it cannot be deployed as a layer of it`,
    );
  const root = deployedLayerName(o.distro, suite, vm.name);
  await commitFile(o.out, root, async (tmp) => {
    await fs.copyFile(vm.overlay, tmp);
    // the overlay names its image by absolute path; the layer beside it, by file name
    await runArgv(renameBackingArgv(tmp, image));
  });
  const disks: { name: string; file: string }[] = [];
  for (const d of vm.disks) {
    const file = root.replace(/\.qcow2$/, `-${d.name}.qcow2`);
    await commitFile(o.out, file, (tmp) =>
      runArgv(convertToQcow2Argv(d.path, tmp, d.format)).then(() => undefined),
    );
    disks.push({ name: d.name, file });
  }
  const nics = vm.nics.map((n) => ({
    network: n.network,
    mac: n.mac,
    hostname: n.hostname,
    ...(n.ipv4 ? { ipv4: n.ipv4 } : {}),
    ...(n.ipv6 ? { ipv6: n.ipv6 } : {}),
  }));
  return { name: vm.name, file: root, image: { ref: vm.image.ref, file: image }, disks, nics };
}

async function commitFile(out: string, name: string, make: (tmp: string) => Promise<void>): Promise<void> {
  const file = path.join(out, name);
  const tmp = `${file}.tmp`;
  await fs.rm(tmp, { force: true });
  try {
    await make(tmp);
    const c = await check(tmp);
    if (c.corruptions > 0 || c.checkErrors > 0) throw new OstError(`${tmp}: qemu-img check found errors`);
    await fs.chmod(tmp, 0o444);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/** The build's env down, whatever happened (a failure to do so is said, not thrown over the build's). */
async function takeDown(rec: EnvRecord, stateRoot: string, reporter: Reporter): Promise<void> {
  try {
    const found = (await discoverEnvs(rec.uri, stateRoot, rec.id)).get(rec.id);
    if (found) await teardown(rec.uri, stateRoot, found, reporter);
  } catch (err) {
    reporter({
      type: 'warning',
      message: `env ${rec.id} of the deploy was not taken down: ${(err as Error).message}; ost down ${rec.id}`,
    });
  }
}
