// The launcher's deployed manifests (launcher/images/deployed.ts) as the builder packs them
// (builder/rpm/deployed.ts): the CLI is the one floor that sees both.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { DeployedPackageInput } from '../../builder/rpm/deployed.js';
import { OstError } from '../../core/errors.js';
import {
  type DeployedManifest,
  deployedManifestName,
  readDeployedManifest,
} from '../../launcher/images/deployed.js';

/** One suite's deployed layers in the build dir `out`, as a package input. */
export async function deployedPackageInput(
  out: string,
  distro: string,
  suite: string,
): Promise<DeployedPackageInput> {
  const file = path.join(out, deployedManifestName(distro, suite));
  const m = await readDeployedManifest(file);
  if (!m)
    throw new OstError(
      `${file} does not exist: suite ${suite} has no deployed layers in ${out}`,
      `build them: ost build-images <set> --out ${out} --deployed ${suite}`,
    );
  return toInput(m, file);
}

/**
 * Every suite's deployed layers in `out` (`<distro>-<suite>-deployed.json`, none of them a layer's own
 * manifest), as package inputs: what `ost publish-images` publishes with the set. One that cannot be
 * packed (an older manifest format) is said to `warn` and left out: it does not hold back the set.
 */
export async function deployedPackagesIn(
  out: string,
  distro: string,
  layers: string[],
  warn: (message: string) => void,
): Promise<DeployedPackageInput[]> {
  const layerFiles = new Set(layers.map((l) => `${distro}-${l}.json`));
  const names = (await fs.readdir(out).catch(() => [] as string[]))
    .filter((f) => f.startsWith(`${distro}-`) && f.endsWith('-deployed.json') && !layerFiles.has(f))
    .sort();
  const inputs: DeployedPackageInput[] = [];
  for (const f of names) {
    try {
      const m = await readDeployedManifest(path.join(out, f));
      if (m) inputs.push(toInput(m, path.join(out, f)));
    } catch (err) {
      if (!(err instanceof OstError)) throw err;
      warn(`not published: ${err.message}${err.hint ? ` (${err.hint})` : ''}`);
    }
  }
  return inputs;
}

function toInput(m: DeployedManifest, file: string): DeployedPackageInput {
  return {
    suite: m.suite,
    key: m.key,
    builtAt: m.builtAt,
    manifest: path.basename(file),
    vms: m.vms.map((v) => {
      const image = m.inputs.images[v.name];
      const prefix = `${m.distro}-`;
      if (!image?.build || !v.image.ref.startsWith(prefix))
        throw new OstError(
          `${file}: VM ${v.name} names no image layer of ${m.distro} with its build`,
          `build the deployed layers again: ost build-images <set> --deployed ${m.suite}`,
        );
      return {
        vm: v.name,
        file: v.file,
        disks: (v.disks ?? []).map((d) => d.file),
        layer: v.image.ref.slice(prefix.length),
        layerBuild: image.build,
      };
    }),
    networks: m.networks,
  };
}
