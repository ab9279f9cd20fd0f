// yargs coerce functions for flag values: a bad value is a usage error at parse time, never NaN or a crash later.
import { payloadProblem } from '../builder/rpm/spec.js';
import { sizeToBytes } from '../core/units.js';
import { ENV_ID } from '../launcher/net/layout.js';

/** yargs coerce for a whole-number flag in [min, max]: `--jobs abc` is an error, never NaN or "unlimited". */
export function wholeNumber(flag: string, min: number, max: number) {
  return (v: unknown): number => {
    const text = String(v);
    const n = Number(text);
    if (!/^[0-9]+$/.test(text.trim()) || n < min || n > max)
      throw new Error(`--${flag} ${text}: expected a whole number from ${min} to ${max}`);
    return n;
  };
}

/** yargs coerce for a size flag (`1G`, `512M`, bytes) into bytes: a bad one is a usage error, not a crash later. */
export function sizeFlag(flag: string) {
  return (v: unknown): number => {
    const text = String(v);
    try {
      return sizeToBytes(text);
    } catch {
      throw new Error(`--${flag} ${text}: expected a size such as 512M, 1G or 1.5G`);
    }
  };
}

/** yargs coerce for --payload: the forms rpmbuild takes (checked by the spec writer too). */
export function payloadFlag(v: unknown): string {
  const problem = payloadProblem(String(v));
  if (problem) throw new Error(`--payload ${problem.replace(/^bad payload /, '')}`);
  return String(v);
}

/** yargs coerce for --id: 8 lowercase hex digits, as lagofy's ids. */
export function envIdFlag(v: unknown): string {
  const text = String(v);
  if (!ENV_ID.test(text)) throw new Error(`--id ${text}: expected 8 lowercase hex digits, e.g. 0a1b2c3d`);
  return text;
}
