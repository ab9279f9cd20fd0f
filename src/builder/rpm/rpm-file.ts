// One RPM of an image set, built from a spec: its file name, the release it gets, the sidecar that says
// which build it holds, rpmbuild run in a scratch dir, and the checks every packed RPM passes (no scriptlets).
// The layers' packing (pack.ts) and the deployed packages' (deployed.ts) share it.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { OstError } from '../../core/errors.js';
import type { Reporter } from '../../core/events.js';
import { atomicWriteFile, commitFile, exists, removeTree } from '../../core/fsutil.js';
import { rpmPackageScriptsArgv } from '../../tools/rpm.js';
import { rpmbuildArgv } from '../../tools/rpmbuild.js';
import { runArgv } from '../../tools/run-tool.js';
import type { BuildPaths } from '../build-dir.js';
import type { ImageSet } from '../plan/model.js';
import { type RpmSpec, releaseFor, renderSpec } from './spec.js';

/** The version of every ost-images RPM: the release (build time) tells builds apart. */
export const RPM_VERSION = '1';

/** One packed RPM and what it stands for. */
export interface PackedRpm {
  name: string;
  version: string;
  release: string;
  file: string;
  layer: string;
  key: string;
  buildId: string;
  parentBuildId?: string;
  squashed: boolean;
  /** `name = version-release` of the RPM it requires, if any. */
  requires?: string;
  /** A suite's deployed package (rpm/deployed.ts): its exact pins, and each VM's root layer with the layer it sits on. */
  deployed?: { suite: string; pins: string[]; roots: { file: string; layer: string }[] };
  /** Whether this run built it (false: an existing RPM was reused). */
  built: boolean;
  buildMs?: number;
  bytes: number;
}

export const packageName = (distro: string, layer: string) => `ost-images-${distro}-${layer}`;
export const squashedName = (distro: string, layer: string) => `ost-images-${distro}-${layer}-squashed`;
export const layerProvide = (distro: string, layer: string) => `ost-images-layer(${distro}-${layer})`;
export const buildProvide = (distro: string, layer: string) => `ost-images-build(${distro}-${layer})`;
export const parentBuildProvide = (distro: string, layer: string) =>
  `ost-images-parent-build(${distro}-${layer})`;

export interface Sidecar {
  name: string;
  release: string;
  buildId: string;
  key: string;
  payload: string;
  squashed: boolean;
}

export const rpmFileName = (name: string, release: string) => `${name}-${RPM_VERSION}-${release}.noarch.rpm`;

/** Pick the release for a build: YYYYMMDDHHMM of the build, suffixed .1, .2… if that minute is taken by another build. */
export async function chooseRelease(
  rpms: string,
  name: string,
  builtAt: string,
  buildId: string,
  payload: string,
) {
  const base = releaseFor(builtAt);
  for (let i = 0; ; i++) {
    const release = i === 0 ? base : `${base}.${i}`;
    const side = path.join(rpms, `${name}-${RPM_VERSION}-${release}.json`);
    if (!(await exists(side))) return { release, reuse: false };
    const s = JSON.parse(await fs.readFile(side, 'utf8')) as Sidecar;
    if (s.buildId === buildId) {
      const reuse = s.payload === payload && (await exists(path.join(rpms, rpmFileName(name, release))));
      return { release, reuse };
    }
  }
}

export async function buildRpm(
  spec: RpmSpec,
  rpms: string,
  work: string,
  signal?: AbortSignal,
): Promise<{ file: string; ms: number }> {
  const top = path.join(work, spec.name);
  await removeTree(top);
  await fs.mkdir(top, { recursive: true });
  const specFile = path.join(top, `${spec.name}.spec`);
  await fs.writeFile(specFile, renderSpec(spec));
  const t0 = Date.now();
  await runArgv(rpmbuildArgv(specFile, top), { signal, logFile: path.join(top, 'rpmbuild.log') });
  const ms = Date.now() - t0;
  const built = path.join(top, 'RPMS', 'noarch', rpmFileName(spec.name, spec.release));
  await assertNoScripts(built);
  const dest = path.join(rpms, rpmFileName(spec.name, spec.release));
  await commitFile(built, dest);
  await removeTree(top);
  return { file: dest, ms };
}

/**
 * A layer RPM is data only: any scriptlet or trigger in it would run as root on every host that installs
 * it (a set file's text must never become one). Checked on every packed RPM and again before publishing.
 */
export async function assertNoScripts(file: string): Promise<void> {
  const r = await runArgv(rpmPackageScriptsArgv(file));
  if (r.stdout.trim() !== '')
    throw new OstError(
      `${path.basename(file)} contains scriptlets, which ost never writes:\n${r.stdout.trim()}`,
      'do not publish it; report this as a bug of ost with the set file that made it',
    );
}

/** Whether an RPM file carries a signature (a header, or a header+payload one). */
export async function isSignedRpm(file: string): Promise<boolean> {
  const r = await runArgv([
    'rpm',
    '-qp',
    '--nosignature',
    '--qf',
    '%{RSAHEADER:pgpsig}|%{DSAHEADER:pgpsig}|%{SIGPGP:pgpsig}',
    file,
  ]);
  return r.stdout.split('|').some((x) => x !== '(none)' && x.trim() !== '');
}

/** What packing every RPM of a set shares: the set, its build dir, the payload, where RPMs go. */
export interface PackRun {
  set: ImageSet;
  paths: BuildPaths;
  payload: string;
  /** The folder of packed RPMs (and their sidecar .json). */
  rpms: string;
  /** rpmbuild's scratch folder. */
  work: string;
  reporter: Reporter;
  signal: AbortSignal | undefined;
}

/** What a packed RPM stands for: the build it holds (its release and sidecar come from it). */
export interface PackTarget {
  name: string;
  builtAt: string;
  buildId: string;
  key: string;
}

/**
 * The RPM of one build: reused when this build is packed with the run's payload already, else built from
 * `spec(release)` and its sidecar written; said as a `pack/<name>` step when built.
 */
export async function packBuild(
  run: PackRun,
  t: PackTarget,
  spec: (release: string) => RpmSpec,
): Promise<{ release: string; file: string; built: boolean; buildMs?: number; bytes: number }> {
  const { rpms, payload, reporter } = run;
  const { release, reuse } = await chooseRelease(rpms, t.name, t.builtAt, t.buildId, payload);
  const file = path.join(rpms, rpmFileName(t.name, release));
  let buildMs: number | undefined;
  if (!reuse) {
    const step = {
      type: 'step',
      id: `pack/${t.name}`,
      title: `pack ${t.name}-${RPM_VERSION}-${release}`,
    } as const;
    reporter({ ...step, status: 'start' });
    buildMs = (await buildRpm(spec(release), rpms, run.work, run.signal)).ms;
    const side: Sidecar = { name: t.name, release, buildId: t.buildId, key: t.key, payload, squashed: false };
    await atomicWriteFile(
      path.join(rpms, `${t.name}-${RPM_VERSION}-${release}.json`),
      JSON.stringify(side, null, 2),
    );
    reporter({ ...step, status: 'done', durationMs: buildMs });
  }
  return { release, file, built: !reuse, buildMs, bytes: (await fs.stat(file)).size };
}
