// Before publishing: the RPMs must install with dnf into a scratch root (parents pulled in by dependency)
// and every installed leaf's backing chain must resolve to files inside that root.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../../core/errors.js';
import type { Reporter } from '../../core/events.js';
import { linkOrCopy, removeTree } from '../../core/fsutil.js';
import { requireTools } from '../../core/require-tool.js';
import { createrepoArgv } from '../../tools/createrepo.js';
import { dnfInstallArgv } from '../../tools/dnf.js';
import { info } from '../../tools/qemu-img.js';
import { runArgv } from '../../tools/run-tool.js';
import { chainOf, type ImageSet, layerFileName, leavesOf } from '../plan/model.js';
import { assertNoScripts, type PackedRpm } from '../rpm/rpm-file.js';
import { IMAGES_PREFIX } from '../rpm/spec.js';

export interface VerifyInstallOptions {
  work: string;
  /** Public key file: install with gpgcheck on (signed RPMs). */
  gpgKey?: string;
  reporter?: Reporter;
  keep?: boolean;
}

export interface VerifyInstallResult {
  installMs: number;
  installed: string[];
}

/** Install the leaves (and squashed packages) into a scratch root and resolve their chains there. */
export async function verifyInstall(
  set: ImageSet,
  rpms: PackedRpm[],
  opts: VerifyInstallOptions,
): Promise<VerifyInstallResult> {
  requireTools(['dnf', 'createrepo_c', 'qemu-img']);
  const staging = path.join(opts.work, 'staging-repo');
  const root = path.join(opts.work, 'root');
  await removeTree(opts.work);
  await fs.mkdir(path.join(staging, 'Packages'), { recursive: true });
  try {
    for (const r of rpms) {
      await assertNoScripts(r.file);
      await linkOrCopy(r.file, path.join(staging, 'Packages', path.basename(r.file)));
    }
    await runArgv(createrepoArgv({ repo: staging, outputDir: staging }));
    const leaves = leavesOf(set);
    const wanted = [
      ...rpms.filter((r) => !r.squashed && leaves.includes(r.layer)).map((r) => r.name),
      ...rpms.filter((r) => r.squashed || r.deployed).map((r) => r.name),
    ];
    const t0 = Date.now();
    await runArgv(
      dnfInstallArgv(
        {
          installRoot: root,
          repos: { 'ost-verify': `file://${staging}` },
          gpgcheck: Boolean(opts.gpgKey),
          repoGpgcheck: false, // the staging metadata is ours and unsigned; the RPM signatures are checked
          gpgKeys: opts.gpgKey ? [opts.gpgKey] : undefined,
          cacheDir: path.join(opts.work, 'dnf-cache'),
        },
        wanted,
      ),
      { timeoutMs: 60 * 60_000 },
    );
    const installMs = Date.now() - t0;
    const dir = path.join(root, IMAGES_PREFIX);
    // each image's chain: as long as its layers, every file inside the root
    const checkChain = async (file: string, expected: number, what: string) => {
      const chain = await info(path.join(dir, file));
      if (chain.length !== expected)
        throw new OstError(`installed ${what} has a chain of ${chain.length} image(s), expected ${expected}`);
      for (const img of chain) {
        const abs = path.resolve(dir, img.filename);
        if (!abs.startsWith(`${root}/`))
          throw new OstError(`installed ${what} resolves outside the install root: ${abs}`);
      }
    };
    for (const leaf of leaves)
      await checkChain(layerFileName(set.distro, leaf), chainOf(set, leaf).length, leaf);
    // a suite's deployed layers: each on the chain of the layer it sits on
    for (const r of rpms)
      for (const d of r.deployed?.roots ?? [])
        await checkChain(d.file, chainOf(set, d.layer).length + 1, `${d.file} of ${r.name}`);
    for (const r of rpms.filter((x) => x.squashed)) {
      const chain = await info(path.join(dir, `${set.distro}-${r.layer}-squashed.qcow2`));
      if (chain.length !== 1) throw new OstError(`squashed ${r.layer} still has a backing file`);
    }
    opts.reporter?.({
      type: 'info',
      message: `installed ${wanted.join(', ')} into a scratch root in ${(installMs / 1000).toFixed(1)}s; chains resolve`,
    });
    return { installMs, installed: wanted };
  } finally {
    if (!opts.keep) await removeTree(opts.work);
  }
}
