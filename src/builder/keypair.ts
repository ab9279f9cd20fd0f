// The image set's SSH key pair: generated on first build, kept with the build outputs, never committed.
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { exists, fsyncDir, removeTree } from '../core/fsutil.js';
import { runArgv } from '../tools/run-tool.js';
import { generateArgv } from '../tools/ssh-keygen.js';
import type { BuildPaths } from './build-dir.js';

/** Read the public key, or undefined when the pair does not exist (yet). */
export async function readPublicKey(paths: BuildPaths): Promise<string | undefined> {
  if (!(await exists(paths.privateKey())) || !(await exists(paths.publicKey()))) return undefined;
  return (await fs.readFile(paths.publicKey(), 'utf8')).trim();
}

/** Make sure the pair exists (private key 0600); returns the public key and whether it was new. */
export async function ensureKeyPair(paths: BuildPaths): Promise<{ publicKey: string; created: boolean }> {
  const existing = await readPublicKey(paths);
  if (existing) {
    await fs.chmod(paths.privateKey(), 0o600);
    return { publicKey: existing, created: false };
  }
  const dir = path.join(paths.workRoot(), 'keygen');
  await removeTree(dir);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, 'key');
  await runArgv(generateArgv(tmp, `ost-images-${paths.distro}`));
  await fs.chmod(tmp, 0o600);
  // public first: a pair is complete only when the private key is in place
  await fs.rename(`${tmp}.pub`, paths.publicKey());
  await fs.rename(tmp, paths.privateKey());
  await fsyncDir(paths.out);
  await removeTree(dir);
  return { publicKey: (await fs.readFile(paths.publicKey(), 'utf8')).trim(), created: true };
}
