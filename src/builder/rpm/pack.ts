// Pack every layer of a built set into its own RPM (and squashed RPMs and suites' deployed packages on
// request). Unchanged layers keep their existing RPM, so a new set only adds the RPMs of layers that were
// rebuilt.
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { UsageError } from '../../core/errors.js';
import type { Reporter } from '../../core/events.js';
import { atomicWriteFile, commitFile, exists, removeTree } from '../../core/fsutil.js';
import { redactUrlsIn } from '../../core/redact-url.js';
import { requireTools } from '../../core/require-tool.js';
import { runArgv } from '../../tools/run-tool.js';
import { BuildPaths, type LayerManifest } from '../build-dir.js';
import { chainOf, type ImageSet, type Layer, layerFileName } from '../plan/model.js';
import { builtManifests } from './built-manifests.js';
import { type DeployedPackageInput, packDeployed } from './deployed.js';
import {
  buildProvide,
  buildRpm,
  layerProvide,
  type PackedRpm,
  type PackRun,
  packageName,
  packBuild,
  parentBuildProvide,
  RPM_VERSION,
  rpmFileName,
  type Sidecar,
  squashedName,
} from './rpm-file.js';
import { DEFAULT_PAYLOAD, type RpmFile, type RpmSpec } from './spec.js';

/** Where the built set is, how to pack it, and what to squash. */
export interface PackOptions {
  out: string;
  /** The set's manifests when the caller already checked them with builtManifests(). */
  manifests?: Map<string, LayerManifest>;
  payload?: string;
  squash?: string[];
  /** Suites' deployed layers to pack, each pinned to the releases of the layers it sits on. */
  deployed?: DeployedPackageInput[];
  reporter?: Reporter;
  signal?: AbortSignal;
}

/** The files of a layer RPM: image, manifest, package lists; the base also carries the set's key pair. */
function layerFiles(paths: BuildPaths, m: LayerManifest, isBase: boolean): RpmFile[] {
  const files: RpmFile[] = [
    { src: paths.image(m.layer), name: layerFileName(m.distro, m.layer), mode: '0444' },
    { src: paths.manifest(m.layer), name: path.basename(paths.manifest(m.layer)), mode: '0644' },
    { src: paths.pkglist(m.layer), name: path.basename(paths.pkglist(m.layer)), mode: '0644' },
  ];
  if (m.parent)
    files.push({ src: paths.pkgdiff(m.layer), name: path.basename(paths.pkgdiff(m.layer)), mode: '0644' });
  const previous = paths.pkgdiffPrevious(m.layer);
  if (existsSync(previous)) files.push({ src: previous, name: path.basename(previous), mode: '0644' });
  if (isBase) files.push(...keyFiles(paths));
  return files;
}

/**
 * The set's key pair, the private key root's alone (0600): `ost up` gives the guests of images that read
 * the SSH key credential a fresh key per env and needs this one only for images that do not.
 */
function keyFiles(paths: BuildPaths): RpmFile[] {
  return [
    { src: paths.privateKey(), name: path.basename(paths.privateKey()), mode: '0600' },
    { src: paths.publicKey(), name: path.basename(paths.publicKey()), mode: '0644' },
  ];
}

/** The package snapshot a layer carries, for `rpm -qi`: each repository's index, checksum and date. */
export function upstreamLines(m: LayerManifest): string[] {
  if (m.day) return [`Built for ${m.day} (refresh: daily).`];
  if (!m.upstream?.length) return [];
  return [
    'Built from these package repositories:',
    ...m.upstream.map((u) => `  ${u.index} sha256 ${u.sha256}${u.date ? ` dated ${u.date}` : ''}`),
  ];
}

/** Pack the set: one RPM per layer, plus `<layer>-squashed` RPMs for the layers named in squash. */
export async function packSet(set: ImageSet, opts: PackOptions): Promise<PackedRpm[]> {
  requireTools(['rpmbuild', 'qemu-img']);
  const reporter: Reporter = opts.reporter ?? (() => {});
  const payload = opts.payload ?? DEFAULT_PAYLOAD;
  const paths = new BuildPaths(opts.out, set.distro);
  const manifests = opts.manifests ?? (await builtManifests(set, paths));
  for (const s of opts.squash ?? []) {
    if (!manifests.has(s))
      throw new UsageError(
        `--squash ${s}: no such layer in ${set.file}`,
        `layers are: ${set.layers.map((l) => l.name).join(', ')}`,
      );
  }
  const rpms = path.join(opts.out, 'rpms');
  const work = path.join(opts.out, '.work', 'rpm');
  await fs.mkdir(rpms, { recursive: true });
  const run: PackRun = { set, paths, payload, rpms, work, reporter, signal: opts.signal };
  const result: PackedRpm[] = [];
  const releases = new Map<string, string>();
  for (const l of set.layers) {
    const packed = await packLayer(
      run,
      l,
      manifests.get(l.name) as LayerManifest,
      l.parent ? releases.get(l.parent) : undefined,
    );
    releases.set(l.name, packed.release);
    result.push(packed);
  }
  for (const layer of opts.squash ?? [])
    result.push(
      await packSquashed(run, manifests.get(layer) as LayerManifest, releases.get(layer) as string),
    );
  for (const d of opts.deployed ?? []) result.push(await packDeployed(run, d, releases));
  await removeTree(work);
  return result;
}

/** One layer's RPM: reused if this build is packed with this payload already, else built; needs its parent's. */
async function packLayer(
  run: PackRun,
  l: Layer,
  m: LayerManifest,
  parentRelease: string | undefined,
): Promise<PackedRpm> {
  const name = packageName(run.set.distro, l.name);
  const requires = l.parent
    ? `${packageName(run.set.distro, l.parent)} = ${RPM_VERSION}-${parentRelease}`
    : undefined;
  const target = { name, builtAt: m.builtAt, buildId: m.buildId, key: m.key };
  const packed = await packBuild(run, target, (release) => layerSpec(run, l, m, release, requires));
  return {
    name,
    version: RPM_VERSION,
    ...packed,
    layer: l.name,
    key: m.key,
    buildId: m.buildId,
    parentBuildId: m.parentBuildId,
    squashed: false,
    requires,
  };
}

/** The spec of a layer's RPM: what it is built from and on, what it provides and requires, its files. */
function layerSpec(
  run: PackRun,
  l: Layer,
  m: LayerManifest,
  release: string,
  requires: string | undefined,
): RpmSpec {
  const { set } = run;
  return {
    name: packageName(set.distro, l.name),
    version: RPM_VERSION,
    release,
    summary: `OST ${set.distro} ${l.name} layer`,
    // URLs without credentials, also those of a manifest recorded before they were left out
    description: redactUrlsIn(
      [
        l.description ?? `The ${l.name} layer of the ${set.distro} OST image set.`,
        `qcow2 ${l.parent ? `overlay on ${layerFileName(set.distro, l.parent)}` : 'base image'}; key ${m.key}.`,
        ...upstreamLines(m),
        ...(m.custom
          ? [
              `Built with custom packages from ${m.custom.repos.join(', ')}:`,
              ...m.custom.packages.map((c) => `  ${c.name} ${c.version} ${c.arch}`),
            ]
          : []),
      ].join('\n'),
    ),
    provides: [
      `${layerProvide(set.distro, l.name)} = ${m.key}`,
      `${buildProvide(set.distro, l.name)} = ${m.buildId.replace(/-/g, '')}`,
      ...(m.parentBuildId
        ? [`${parentBuildProvide(set.distro, l.name)} = ${m.parentBuildId.replace(/-/g, '')}`]
        : []),
    ],
    requires: requires ? [requires] : [],
    payload: run.payload,
    files: layerFiles(run.paths, m, !l.parent),
  };
}

/** The whole chain merged into one standalone qcow2 (no backing file), packed without dependencies. */
async function packSquashed(run: PackRun, m: LayerManifest, release: string): Promise<PackedRpm> {
  const { set, paths, payload, rpms, work, reporter, signal } = run;
  const name = squashedName(set.distro, m.layer);
  const file = path.join(rpms, rpmFileName(name, release));
  const side = path.join(rpms, `${name}-${RPM_VERSION}-${release}.json`);
  const prev = (await exists(side)) ? (JSON.parse(await fs.readFile(side, 'utf8')) as Sidecar) : undefined;
  const base = {
    name,
    version: RPM_VERSION,
    release,
    file,
    layer: m.layer,
    key: m.key,
    buildId: m.buildId,
    squashed: true,
  };
  if (prev?.buildId === m.buildId && prev.payload === payload && (await exists(file))) {
    return { ...base, built: false, bytes: (await fs.stat(file)).size };
  }
  reporter({
    type: 'step',
    id: `pack/${name}`,
    title: `squash and pack ${name}-${RPM_VERSION}-${release}`,
    status: 'start',
  });
  const t0 = Date.now();
  const squashedImage = path.join(paths.out, `${set.distro}-${m.layer}-squashed.qcow2`);
  await runArgv(['qemu-img', 'convert', '-O', 'qcow2', paths.image(m.layer), `${squashedImage}.tmp`], {
    signal,
  });
  await fs.chmod(`${squashedImage}.tmp`, 0o444);
  await commitFile(`${squashedImage}.tmp`, squashedImage);
  const chain = chainOf(set, m.layer)
    .map((l) => l.name)
    .join(' → ');
  const r = await buildRpm(
    {
      name,
      version: RPM_VERSION,
      release,
      summary: `OST ${set.distro} ${m.layer} image, squashed (no backing chain)`,
      description: `${chain} merged into one standalone qcow2; needs no other ost-images package.`,
      provides: [`ost-images-squashed(${set.distro}-${m.layer}) = ${m.key}`],
      requires: [],
      payload,
      files: [
        { src: squashedImage, name: path.basename(squashedImage), mode: '0444' },
        { src: paths.pkglist(m.layer), name: `${set.distro}-${m.layer}-squashed-pkglist.txt`, mode: '0644' },
        // its layer's manifest: what ost up reads about the image (sshCredential) next to its qcow2
        { src: paths.manifest(m.layer), name: `${set.distro}-${m.layer}-squashed.json`, mode: '0644' },
        ...keyFiles(paths),
      ],
    },
    rpms,
    work,
    signal,
  );
  await fs.rm(squashedImage, { force: true });
  const sc: Sidecar = { name, release, buildId: m.buildId, key: m.key, payload, squashed: true };
  await atomicWriteFile(side, JSON.stringify(sc, null, 2));
  reporter({
    type: 'step',
    id: `pack/${name}`,
    title: `squash and pack ${name}-${RPM_VERSION}-${release}`,
    status: 'done',
    durationMs: Date.now() - t0,
  });
  return { ...base, built: true, buildMs: r.ms, bytes: (await fs.stat(file)).size };
}
