// `<distro>-<layer>` → the qcow2 installed by ost-images-<distro>-<layer> (from the rpm database the
// install wrote, rpm-db.ts, on the host or in an installroot; or OST_IMAGES_DIR), its whole backing chain
// checked and readable by qemu, and the SSH key of its image set.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { OstError } from '../../core/errors.js';
import { type ImageInfo, check as qemuImgCheck, info as qemuImgInfo } from '../../tools/qemu-img.js';
import { type InstalledPackage, rpmFilesArgv } from '../../tools/rpm.js';
import { runArgv } from '../../tools/run-tool.js';
import type { EnvVm, ImageRef } from '../env/model.js';
import { type Identity, unreadableBy } from './qemu-user.js';
import { notInstalled, queryInstalled } from './rpm-db.js';

export interface ResolveOptions {
  /** Look the packages up in this installroot (`rpm --root`, its own database) instead of the host. */
  root?: string;
  /** Take `<distro>-<layer>.qcow2` from this directory instead of the rpm database. */
  imagesDir?: string;
  /**
   * Private key to log in with (its public half is handed to the guests too); default: a fresh one per env
   * for images that read the SSH key credential, else `<distro>_id_rsa` next to the chain's base image.
   */
  key?: string;
  qemu: Identity;
  signal?: AbortSignal;
}

export interface ResolvedImage {
  /** The image used: `debian12-engine-installed`, `debian12-engine-installed-squashed`, or a path. */
  ref: string;
  /** Why the chained layers were used although a squashed package is installed (an older build). */
  note?: string;
  path: string;
  package?: { name: string; version: string; release: string };
  /** Absolute file names, top first. */
  chain: string[];
  virtualSize: number;
  /**
   * The key its image set ships (`<distro>_id_rsa` beside the chain), or `--key`; none when the image
   * reads the SSH key credential and its set ships no key.
   */
  key?: string;
  /** --key: the env logs in with that key (and hands its public half to the guests), not a fresh one. */
  keyGiven?: boolean;
  /**
   * The image takes root's authorized key from the systemd credential `ssh.authorized_keys.root` (its
   * manifest, `<image>.json` beside the qcow2, says `sshCredential: true`): `ost up` gives its env a key
   * of its own. Otherwise only the shipped key opens it.
   */
  sshCredential: boolean;
}

/** The manifest beside an image (`<image>.json`, as the builder writes and the RPMs install it). */
export const imageManifestFile = (image: string) => image.replace(/\.qcow2$/, '.json');

/** The fields of an image's manifest (undefined when it has none, or none that parses as an object). */
export function readImageManifest(image: string): Record<string, unknown> | undefined {
  try {
    const m: unknown = JSON.parse(readFileSync(imageManifestFile(image), 'utf8'));
    return typeof m === 'object' && m !== null ? (m as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the image reads the SSH key credential, as its manifest says. */
export function readsSshCredential(image: string): boolean {
  return readImageManifest(image)?.sshCredential === true;
}

/** The display form of an image reference. */
export function refText(ref: ImageRef): string {
  return ref.kind === 'path' ? ref.path : `${ref.distro}-${ref.layer}`;
}

/** What resolveImages keys a VM's image by: the image, and whether its squashed package may stand in. */
export function imageKey(vm: Pick<EnvVm, 'image' | 'squashed'>): string {
  return `${refText(vm.image)}${vm.image.kind === 'package' && !vm.squashed ? ' (chained)' : ''}`;
}

/** rpm's order of two releases of ost-images (UTC timestamps, digits compared as numbers). */
function releaseOrder(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

type PackageRef = ImageRef & { kind: 'package' };

/** The package that installs an image. */
export function packageOf(ref: PackageRef, squashed: boolean): string {
  return `ost-images-${ref.distro}-${ref.layer}${squashed ? '-squashed' : ''}`;
}

/** Which packages (and qcow2 names) may provide an image, in order of preference. */
function candidates(ref: PackageRef, squashed: boolean): { name: string; file: string }[] {
  const chained = { name: packageOf(ref, false), file: `${ref.distro}-${ref.layer}` };
  return squashed ? [{ name: packageOf(ref, true), file: `${chained.file}-squashed` }, chained] : [chained];
}

function findKey(chain: string[], distro?: string): string | undefined {
  const dirs = [...new Set(chain.map((f) => path.dirname(f)))].reverse();
  for (const d of dirs) {
    if (distro && existsSync(path.join(d, `${distro}_id_rsa`))) return path.join(d, `${distro}_id_rsa`);
    const any = readdirSync(d).find((f) => f.endsWith('_id_rsa'));
    if (any) return path.join(d, any);
  }
  return undefined;
}

/** Where an image was found: its qcow2, the package that installed it, and a note on the choice. */
interface Found {
  file: string;
  ref: string;
  pkg?: ResolvedImage['package'];
  distro?: string;
  note?: string;
}

type Wanted = { ref: ImageRef; squashed: boolean };

/** OST_IMAGES_DIR / --images-dir: `<distro>-<layer>[-squashed].qcow2` in one directory. */
function fromImagesDir(w: Wanted & { ref: PackageRef }, dir: string): Found {
  const options = candidates(w.ref, w.squashed);
  const found = options.find((c) => existsSync(path.resolve(dir, `${c.file}.qcow2`)));
  const c = found ?? (options.at(-1) as (typeof options)[number]);
  return { file: path.resolve(dir, `${c.file}.qcow2`), ref: c.file, distro: w.ref.distro };
}

type Installed = InstalledPackage;

/**
 * Which candidate package to take: the squashed one when installed, unless it is older than the chained
 * one (a set published later without --squash): a stale image is never taken over a fresh one.
 */
function choose(
  options: ReturnType<typeof candidates>,
  installed: readonly Installed[],
): { chosen?: (typeof options)[number]; note?: string } {
  const installedAs = (c: (typeof options)[number]) => installed.find((p) => p.name === c.name);
  const [squashed, chained] = options.length === 2 ? options : [];
  const sq = squashed && installedAs(squashed);
  const ch = chained && installedAs(chained);
  if (sq && ch && releaseOrder(`${sq.version}-${sq.release}`, `${ch.version}-${ch.release}`) < 0)
    return {
      chosen: chained,
      note: `${sq.name} ${sq.version}-${sq.release} is older than ${ch.name} ${ch.version}-${ch.release}: the chained layers are used (dnf upgrade, or remove ${sq.name})`,
    };
  return { chosen: options.find((c) => installedAs(c)) };
}

/** The packaged images from the rpm database (the host's, or an installroot's): one rpm -q for all. */
async function fromRpm(
  packaged: readonly [string, Wanted][],
  root: string | undefined,
  signal: AbortSignal | undefined,
  found: Map<string, Found>,
  problems: string[],
): Promise<void> {
  const names = [
    ...new Set(packaged.flatMap(([, w]) => candidates(w.ref as PackageRef, w.squashed).map((c) => c.name))),
  ];
  const answer = await queryInstalled(names, root, signal);
  if (answer.failure) {
    problems.push(answer.failure);
    return;
  }
  const missing: string[] = [];
  await Promise.all(
    packaged.map(async ([text, w]) => {
      const ref = w.ref as PackageRef;
      const options = candidates(ref, w.squashed);
      const { chosen, note } = choose(options, answer.installed);
      if (!chosen) {
        missing.push(options.at(-1)?.name as string);
        return;
      }
      const pkg = answer.installed.find((p) => p.name === chosen.name) as Installed;
      const files = await runArgv(rpmFilesArgv(chosen.name, answer.db), { signal });
      const qcow = files.stdout.split('\n').find((f) => f.endsWith(`/${chosen.file}.qcow2`));
      if (!qcow) {
        problems.push(
          `package ${chosen.name} installs no ${chosen.file}.qcow2; reinstall it: dnf reinstall ${chosen.name}`,
        );
        return;
      }
      found.set(text, {
        file: root ? path.join(root, qcow) : qcow,
        ref: chosen.file,
        pkg: { name: chosen.name, version: pkg.version, release: pkg.release },
        distro: ref.distro,
        note,
      });
    }),
  );
  if (missing.length > 0) problems.unshift(notInstalled(missing, answer));
}

/**
 * A found image's whole chain, checked: it exists, qemu can read every file, no layer is damaged, and the
 * key to log in with is there. Problems are collected; the image when it is usable.
 */
type Checked = Map<string, Promise<{ corruptions: number; checkErrors: number }>>;

/** `qemu-img check` of one layer file, once per resolution however many chains share it. */
function checkOnce(file: string, signal: AbortSignal | undefined, checked: Checked) {
  let c = checked.get(file);
  if (!c) {
    c = qemuImgCheck(file, { signal }, true).catch((err: unknown) => {
      if (err instanceof OstError) return { corruptions: 0, checkErrors: 1 };
      throw err;
    });
    checked.set(file, c);
  }
  return c;
}

async function checkImage(
  p: Found,
  opts: ResolveOptions,
  problems: string[],
  checked: Checked,
): Promise<ResolvedImage | undefined> {
  if (!existsSync(p.file)) {
    problems.push(
      `image ${p.ref}: ${p.file} does not exist${opts.imagesDir ? ` (OST_IMAGES_DIR=${opts.imagesDir})` : ''}`,
    );
    return undefined;
  }
  let images: ImageInfo[];
  try {
    images = await qemuImgInfo(p.file, { signal: opts.signal }, true);
  } catch (err) {
    if (!(err instanceof OstError)) throw err;
    problems.push(
      `image ${p.ref}: the ${err.message}\n  fix: install the parent layer's package (rpm -q --requires ${p.pkg?.name ?? 'the package'})`,
    );
    return undefined;
  }
  const chain = images.map((i) => path.resolve(path.dirname(p.file), i.filename));
  for (const f of chain) {
    const why = unreadableBy(opts.qemu, f);
    if (why) problems.push(`image ${p.ref}: qemu (user ${opts.qemu.name}) cannot read the chain: ${why}`);
  }
  // a truncated or overwritten layer still opens, and fails only inside the booting guest: check its
  // metadata now (a few ms per file; -U, running envs hold them open)
  // all of a chain at once, and a file that several chains share (the base) once
  const results = await Promise.all(
    chain.map((f, i) => (images[i]?.format === 'qcow2' ? checkOnce(f, opts.signal, checked) : undefined)),
  );
  for (const [i, c] of results.entries())
    if (c && (c.corruptions > 0 || c.checkErrors > 0))
      problems.push(
        `image ${p.ref}: ${chain[i]} is damaged (qemu-img check: ${c.corruptions} corruptions, ${c.checkErrors} check errors; truncated or overwritten?)\n  fix: reinstall it (dnf reinstall ${p.pkg?.name ?? 'the package that owns it'})`,
      );
  const key = opts.key ? path.resolve(opts.key) : findKey(chain, p.distro);
  const sshCredential = readsSshCredential(p.file);
  if ((!key && !sshCredential) || (key && !existsSync(key))) {
    problems.push(
      `image ${p.ref}: no SSH private key ${opts.key ?? `(${p.distro ?? '<distro>'}_id_rsa next to ${chain.at(-1)})`}; the base RPM ships it, or pass --key`,
    );
    return undefined;
  }
  return {
    ref: p.ref,
    note: p.note,
    path: p.file,
    package: p.pkg,
    chain,
    virtualSize: images[0]?.virtualSize ?? 0,
    key,
    keyGiven: opts.key !== undefined || undefined,
    sshCredential,
  };
}

/**
 * Resolve the images of these VMs (each distinct image once). Every problem is collected: missing
 * packages become one error with the `dnf install` that fixes them.
 */
export async function resolveImages(
  vms: readonly EnvVm[],
  opts: ResolveOptions,
): Promise<Map<string, ResolvedImage>> {
  const root = opts.root ? path.resolve(opts.root) : undefined;
  const wanted = new Map<string, Wanted>();
  for (const vm of vms) wanted.set(imageKey(vm), { ref: vm.image, squashed: vm.squashed });
  const found = new Map<string, Found>();
  const problems: string[] = [];
  const packaged: [string, Wanted][] = [];
  for (const [text, w] of wanted) {
    if (w.ref.kind === 'path') found.set(text, { file: path.resolve(w.ref.path), ref: w.ref.path });
    else if (opts.imagesDir) found.set(text, fromImagesDir({ ...w, ref: w.ref }, opts.imagesDir));
    else packaged.push([text, w]);
  }
  if (packaged.length > 0) await fromRpm(packaged, root, opts.signal, found, problems);
  const out = new Map<string, ResolvedImage>();
  const checked: Checked = new Map();
  await Promise.all(
    [...found].map(async ([text, p]) => {
      const img = await checkImage(p, opts, problems, checked);
      if (img) out.set(text, img);
    }),
  );
  if (problems.length > 0) {
    // one line per problem, even where two files of a chain share it (the same directory, say)
    throw new OstError(
      `cannot use the images of this environment:\n${[...new Set(problems)].map((p) => `  - ${p}`).join('\n')}`,
    );
  }
  return out;
}
