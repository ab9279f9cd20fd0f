// qemu-img adapter: argv builders, runners and parsers for `info --output=json` and `check --output=json`.
import { InternalError, OstError } from '../core/errors.js';
import type { ExecOptions, ExecResult } from '../core/exec.js';
import { runArgv } from './run-tool.js';

/** One image of `qemu-img info --backing-chain --output=json`. */
export interface ImageInfo {
  filename: string;
  format: string;
  virtualSize: number;
  actualSize: number;
  backingFilename?: string;
  fullBackingFilename?: string;
  backingFormat?: string;
}

/** `qemu-img check --output=json`. */
export interface CheckResult {
  filename: string;
  checkErrors: number;
  leaks: number;
  corruptions: number;
  imageEndOffset?: number;
}

/** argv: create an empty qcow2. */
export function createArgv(file: string, size: string): string[] {
  return ['qemu-img', 'create', '-q', '-f', 'qcow2', file, size];
}

/** argv: create a qcow2 overlay; `backing` is used as written (relative names stay relative). */
export function createOverlayArgv(
  file: string,
  backing: string,
  backingFormat: 'qcow2' | 'raw' = 'qcow2',
): string[] {
  return ['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', backingFormat, '-b', backing, file];
}

/** argv: put a qcow2 on `backing` (safe mode: what the old chain had and the new one lacks is copied in). */
export function rebaseArgv(file: string, backing: string): string[] {
  return ['qemu-img', 'rebase', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', backing, file];
}

/** argv: name another backing file without touching the data (the same bytes under another name). */
export function renameBackingArgv(file: string, backing: string): string[] {
  return ['qemu-img', 'rebase', '-q', '-u', '-f', 'qcow2', '-F', 'qcow2', '-b', backing, file];
}

/** argv: a disk (raw or qcow2, its whole chain) into one standalone qcow2 (holes stay holes). */
export function convertToQcow2Argv(from: string, to: string, format: string): string[] {
  return ['qemu-img', 'convert', '-q', '-f', format, '-O', 'qcow2', from, to];
}

/** argv: a whole chain into one standalone raw file (holes stay holes); -U reads a chain a VM holds open. */
export function convertToRawArgv(from: string, to: string): string[] {
  return ['qemu-img', 'convert', '-q', '-U', '-O', 'raw', from, to];
}

/** argv: the whole chain as JSON; `forceShare` (-U) reads images that running VMs hold open. */
export function infoArgv(file: string, forceShare = false): string[] {
  return ['qemu-img', 'info', ...(forceShare ? ['-U'] : []), '--backing-chain', '--output=json', file];
}

/** argv: check a qcow2's metadata; `forceShare` (-U) checks one that running VMs hold open. */
export function checkArgv(file: string, forceShare = false): string[] {
  return ['qemu-img', 'check', ...(forceShare ? ['-U'] : []), '--output=json', '-f', 'qcow2', file];
}

function num(v: unknown): number {
  return typeof v === 'number' ? v : 0;
}
function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Parse `qemu-img info --backing-chain --output=json` (an array) or a single-image object. */
export function parseInfo(stdout: string): ImageInfo[] {
  const raw: unknown = JSON.parse(stdout);
  const list = Array.isArray(raw) ? raw : [raw];
  return list.map((x: unknown) => {
    if (!x || typeof x !== 'object') throw new InternalError('qemu-img info: unexpected JSON');
    const o = x as Record<string, unknown>;
    return {
      filename: str(o.filename) ?? '',
      format: str(o.format) ?? '',
      virtualSize: num(o['virtual-size']),
      actualSize: num(o['actual-size']),
      backingFilename: str(o['backing-filename']),
      fullBackingFilename: str(o['full-backing-filename']),
      backingFormat: str(o['backing-filename-format']),
    };
  });
}

/** Parse `qemu-img check --output=json`. */
export function parseCheck(stdout: string): CheckResult {
  const o = JSON.parse(stdout) as Record<string, unknown>;
  return {
    filename: str(o.filename) ?? '',
    checkErrors: num(o['check-errors']),
    leaks: num(o.leaks),
    corruptions: num(o.corruptions),
    imageEndOffset: typeof o['image-end-offset'] === 'number' ? o['image-end-offset'] : undefined,
  };
}

const exec = (argv: string[], opts?: ExecOptions): Promise<ExecResult> => runArgv(argv, opts);

export async function create(file: string, size: string, opts?: ExecOptions): Promise<void> {
  await exec(createArgv(file, size), opts);
}

export async function createOverlay(
  file: string,
  backing: string,
  opts?: ExecOptions,
  backingFormat: 'qcow2' | 'raw' = 'qcow2',
): Promise<void> {
  await exec(createOverlayArgv(file, backing, backingFormat), opts);
}

/** The whole backing chain, top first. Throws OstError naming the missing file when it does not resolve. */
export async function info(file: string, opts?: ExecOptions, forceShare = false): Promise<ImageInfo[]> {
  const res = await exec(infoArgv(file, forceShare), { ...opts, allowFailure: true });
  if (res.exitCode !== 0) {
    throw new OstError(
      `backing chain of ${file} does not resolve: ${res.stderr.trim().split('\n').pop() ?? ''}`,
    );
  }
  return parseInfo(res.stdout);
}

/** qemu-img check; exit 0 clean, 3 leaks only (harmless), 2 corruption, 1 check failed. */
export async function check(file: string, opts?: ExecOptions, forceShare = false): Promise<CheckResult> {
  const res = await exec(checkArgv(file, forceShare), { ...opts, allowFailure: true });
  if (res.exitCode === 0 || res.exitCode === 3 || res.exitCode === 2) {
    const parsed = parseCheck(res.stdout);
    if (res.exitCode === 2 && parsed.corruptions === 0) parsed.corruptions = 1;
    return parsed;
  }
  throw new OstError(`qemu-img check could not check ${file}: ${res.stderr.trim()}`);
}
