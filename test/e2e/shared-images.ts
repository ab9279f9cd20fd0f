// The debian12 image set every e2e file shares: images/debian12.yaml built, published and dnf-installed
// once per content key into a cache outside the clone (/var/cache/ost-test; OST_TEST_CACHE moves it), so
// a CI run builds it at most once and a later run on the same machine reuses it.
//
// The key covers everything that decides what the build produces: the set file and its scripts, the
// builder's sources and what it runs on (src/builder, src/tools, src/core), the guest readiness module
// whose marker the base image carries (src/guest), the npm lock file and this file. Change any of them and the set is built again from nothing, so a reused set is one the current
// builder made. The CLI glue and the launcher are not in it: the images e2e builds its own tiny leaves
// through the CLI on every run.
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { parse, stringify } from 'yaml';
import { fileSha256, removeTree, sha256 } from '../../src/core/fsutil.js';
import { acquireLock } from '../../src/core/lock.js';
import { dnfInstallArgv } from '../../src/tools/dnf.js';
import { runArgv } from '../../src/tools/run-tool.js';
import { REPO_ROOT } from '../helpers/repo-root.js';
import { ensureBuilt, ost } from './helpers.js';

/** Where the shared set of one key lives, and how it was made. */
export interface SharedImages {
  key: string;
  dir: string;
  /** The set file that was built (a copy of images/debian12.yaml and its folder). */
  set: string;
  /** `ost build-images --out`: qcow2 chain, manifests, package lists, key pair. */
  out: string;
  /** The DNF repository it was published to. */
  repo: string;
  /** An installroot holding ost-images-debian12-engine-installed and -host-installed. */
  root: string;
  /** The `ost build-images --json` result of the build that made it (every layer `built`). */
  build: { layers: { layer: string; status: string }[] };
  buildSeconds: number;
  madeAt: string;
  /** False when this process built it, true when an earlier run had. */
  reused: boolean;
}

const MIN = 60_000;
export const INSTALLED_LEAVES = [
  'ost-images-debian12-engine-installed',
  'ost-images-debian12-host-installed',
];

export function cacheRoot(): string {
  return process.env.OST_TEST_CACHE ?? '/var/cache/ost-test';
}

/** Every file under `dir` (relative to the repo root), sorted. */
function filesUnder(rel: string): string[] {
  const abs = path.join(REPO_ROOT, rel);
  if (!existsSync(abs)) return [];
  const out: string[] = [];
  for (const e of readdirSync(abs, { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    if (e.isDirectory()) out.push(...filesUnder(r));
    else if (e.isFile()) out.push(r);
  }
  return out.sort();
}

/** The content key of the shared set: paths and bytes of everything that decides the build's result. */
export async function sharedKey(): Promise<string> {
  const files = [
    'images/debian12.yaml',
    ...filesUnder('images/debian12'),
    ...filesUnder('src/builder'),
    ...filesUnder('src/tools'),
    ...filesUnder('src/core'),
    ...filesUnder('src/guest'),
    'package-lock.json',
    'test/e2e/shared-images.ts',
  ];
  const parts: string[] = [];
  for (const f of files) parts.push(`${f} ${await fileSha256(path.join(REPO_ROOT, f))}`);
  return sha256(parts.join('\n')).slice(0, 16);
}

/** Append a line to the run's timing report (scripts/test.sh prints it at the end). */
function report(line: string): void {
  const file = process.env.OST_E2E_TIMINGS;
  if (file) appendFileSync(file, `${line}\n`);
}

function readReady(dir: string): SharedImages | undefined {
  const f = path.join(dir, 'ready.json');
  if (!existsSync(f)) return undefined;
  try {
    return { ...(JSON.parse(readFileSync(f, 'utf8')) as SharedImages), reused: true };
  } catch {
    return undefined;
  }
}

/**
 * The shipped set as the tests build it: the same layers (base → upgrade → deps-installed → leaves) and steps, with two
 * packages' worth of time left out. The upgrade layer goes without the bookworm-updates and
 * bookworm-security repositories: with them, its apt full-upgrade of oldstable pulls ~650 MB of updates
 * (a new kernel and its initramfs) and took over 10 min under TCG here — and a different amount every day;
 * the upgrade step still runs (against the base's mirror), and upgrading from a repository that changes is
 * tested on a local one (nightly.test.ts). engine-installed goes without postgresql: its install (LLVM for
 * the JIT, initdb under TCG) was ~170 s of the ~270-s layer on the critical path of every cold CI run, and
 * no test uses the database (the image does not start it at boot); nginx-light and the layer's script stay,
 * and deps-installed goes without what postgresql needs.
 */
export function testVariant(setYaml: string): string {
  const doc = parse(setYaml) as {
    layers: {
      name: string;
      repos?: unknown[];
      steps?: { install?: string[]; dependenciesOf?: string[] }[];
    }[];
  };
  const layer = (name: string) => {
    const l = doc.layers.find((x) => x.name === name);
    if (!l) throw new Error(`images/debian12.yaml has no ${name} layer any more`);
    return l;
  };
  const upgrade = layer('upgrade');
  if (!upgrade.repos) throw new Error('images/debian12.yaml has no upgrade layer with repos: any more');
  delete upgrade.repos;
  const install = layer('engine-installed').steps?.find((s) => s.install?.includes('postgresql'));
  if (!install?.install)
    throw new Error('images/debian12.yaml engine-installed installs no postgresql any more');
  install.install = install.install.filter((p) => p !== 'postgresql');
  // nor what postgresql needs (LLVM, the server), in the layer below the leaves
  const deps = layer('deps-installed').steps?.find((s) => s.dependenciesOf?.includes('postgresql'));
  if (!deps?.dependenciesOf)
    throw new Error('images/debian12.yaml deps-installed has no dependenciesOf postgresql any more');
  deps.dependenciesOf = deps.dependenciesOf.filter((p) => p !== 'postgresql');
  return stringify(doc);
}

let memo: Promise<SharedImages> | undefined;

/**
 * The shared debian12 set for the current sources: reused when a complete one of this key exists, else
 * built, published and installed now (under a lock, so concurrent test processes build it once).
 */
export function sharedImages(): Promise<SharedImages> {
  memo ??= make();
  return memo;
}

async function make(): Promise<SharedImages> {
  ensureBuilt();
  const key = await sharedKey();
  const top = cacheRoot();
  mkdirSync(top, { recursive: true, mode: 0o755 });
  const dir = path.join(top, `debian12-${key}`);
  const ready = readReady(dir);
  if (ready) {
    report(`shared debian12 images: reused ${dir} (built ${ready.madeAt} in ${ready.buildSeconds} s)`);
    return ready;
  }
  const lock = await acquireLock(path.join(top, 'debian12.lock'), 'build the shared e2e image set', 60 * MIN);
  try {
    const again = readReady(dir);
    if (again) {
      report(`shared debian12 images: reused ${dir} (built by a concurrent run)`);
      return again;
    }
    const started = Date.now();
    await removeTree(dir);
    // qemu (libvirt-qemu) must traverse every folder down to the installed images
    mkdirSync(path.join(dir, 'set'), { recursive: true, mode: 0o755 });
    for (const f of ['debian12.yaml', 'debian12'])
      cpSync(path.join(REPO_ROOT, 'images', f), path.join(dir, 'set', f), { recursive: true });
    const set = path.join(dir, 'set', 'debian12.yaml');
    writeFileSync(set, testVariant(readFileSync(set, 'utf8')));
    const out = path.join(dir, 'out');
    const repo = path.join(dir, 'repo');
    const root = path.join(dir, 'root');
    const b = await ost(['build-images', set, '--out', out, '--publish', repo, '--json'], {
      timeoutMs: 90 * MIN,
    });
    if (b.code !== 0)
      throw new Error(`building the shared debian12 set failed (exit ${b.code}):\n${b.stderr}`);
    mkdirSync(root, { mode: 0o755 });
    await runArgv(
      dnfInstallArgv(
        {
          installRoot: root,
          repos: { ost: `file://${repo}` },
          gpgcheck: false,
          cacheDir: `${root}-dnfcache`,
        },
        INSTALLED_LEAVES,
      ),
      { timeoutMs: 30 * MIN },
    );
    await removeTree(`${root}-dnfcache`);
    const made: SharedImages = {
      key,
      dir,
      set,
      out,
      repo,
      root,
      build: JSON.parse(b.stdout),
      buildSeconds: Math.round((Date.now() - started) / 1000),
      madeAt: new Date().toISOString(),
      reused: false,
    };
    writeFileSync(path.join(dir, 'ready.json.tmp'), JSON.stringify(made, null, 2));
    renameSync(path.join(dir, 'ready.json.tmp'), path.join(dir, 'ready.json'));
    // older keys' sets are of no use any more: keep the disk bounded
    for (const e of readdirSync(top))
      if (e.startsWith('debian12-') && e !== path.basename(dir)) await removeTree(path.join(top, e));
    report(`shared debian12 images: built, published and installed in ${made.buildSeconds} s → ${dir}`);
    return made;
  } catch (err) {
    await removeTree(dir);
    throw err;
  } finally {
    await lock.release();
  }
}
