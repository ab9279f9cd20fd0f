// Append files to an initrd: Linux unpacks concatenated cpio archives (newc format) in order.
import * as fs from 'node:fs/promises';
import { gzipSync } from 'node:zlib';

function header(name: string, size: number, mode: number, ino: number): Buffer {
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  const fields = [ino, mode, 0, 0, 1, Math.floor(Date.now() / 1000), size, 0, 0, 0, 0, name.length + 1, 0];
  return Buffer.from(`070701${fields.map(hex).join('')}${name}\0`, 'latin1');
}

const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);

/** A gzip-compressed newc cpio archive holding the given files at the archive root. */
export function cpioNewc(files: { name: string; data: Buffer; mode?: number }[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const f of [...files, { name: 'TRAILER!!!', data: Buffer.alloc(0), mode: 0 }]) {
    const h = header(
      f.name,
      f.data.length,
      f.name === 'TRAILER!!!' ? 0 : 0o100000 | (f.mode ?? 0o644),
      ino++,
    );
    parts.push(h, pad4(h.length), f.data, pad4(f.data.length));
  }
  return gzipSync(Buffer.concat(parts));
}

/** Write `dest` = `initrd` followed by an archive holding `files`. */
export async function appendToInitrd(
  initrd: string,
  dest: string,
  files: { name: string; data: Buffer }[],
): Promise<void> {
  const base = await fs.readFile(initrd);
  await fs.writeFile(dest, Buffer.concat([base, cpioNewc(files)]));
}
