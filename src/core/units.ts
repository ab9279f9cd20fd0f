// Sizes as written in config files (6G, 512M, 101G): K, M, G, T are binary units.
import { InternalError } from './errors.js';

/** Bytes of a size such as 6G or 1.5G; throws on anything else (callers validate the text first). */
export function sizeToBytes(text: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)([KMGT])?$/.exec(text);
  if (!m) throw new InternalError(`bad size ${text}`);
  const mult = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[m[2] ?? ''] ?? 1;
  return Math.round(Number(m[1]) * mult);
}
