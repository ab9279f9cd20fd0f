// Verify a finished layer before it is committed: qcow2 check, relocatable backing chain, package list.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../core/errors.js';
import { linkOrCopy, removeTree } from '../core/fsutil.js';
import { check, type ImageInfo, info } from '../tools/qemu-img.js';
import { chainOf, type ImageSet, layerFileName } from './plan/model.js';

/** qemu-img check must find no errors and no corruption (leaked clusters are harmless). */
export async function checkImage(file: string): Promise<void> {
  const res = await check(file);
  if (res.corruptions > 0 || res.checkErrors > 0) {
    throw new OstError(
      `qemu-img check found ${res.corruptions} corruption(s) and ${res.checkErrors} error(s) in ${file}`,
      'the layer is not committed; rebuild it with --force',
    );
  }
}

/**
 * The chain must resolve through relative names only: link the layer and its ancestors into a fresh
 * directory (as the RPMs will install them into one) and resolve it there.
 */
export async function checkRelocatableChain(
  set: ImageSet,
  layer: string,
  candidate: string,
  outDir: string,
  scratch: string,
): Promise<ImageInfo[]> {
  const chain = chainOf(set, layer);
  await removeTree(scratch);
  await fs.mkdir(scratch, { recursive: true });
  try {
    for (const l of chain) {
      const name = layerFileName(set.distro, l.name);
      const src = l.name === layer ? candidate : path.join(outDir, name);
      await linkOrCopy(src, path.join(scratch, name));
    }
    const top = path.join(scratch, layerFileName(set.distro, layer));
    const infos = await info(top);
    if (infos.length !== chain.length) {
      throw new OstError(
        `backing chain of ${layer} has ${infos.length} image(s), expected ${chain.length} (${chain.map((l) => l.name).join(' → ')})`,
      );
    }
    infos.forEach((img, i) => {
      const expected = path.join(
        scratch,
        layerFileName(set.distro, (chain[chain.length - 1 - i] as { name: string }).name),
      );
      if (path.resolve(scratch, img.filename) !== expected) {
        throw new OstError(
          `backing chain of ${layer} leaves the directory: ${img.filename} (expected ${expected})`,
        );
      }
      if (img.backingFilename?.includes('/')) {
        throw new OstError(
          `${img.filename} has a backing name with a directory (${img.backingFilename}); it must be relative`,
        );
      }
      if (img.format !== 'qcow2') throw new OstError(`${img.filename} is ${img.format}, expected qcow2`);
    });
    return infos;
  } finally {
    await removeTree(scratch);
  }
}
