// debootstrap adapter: the mirror's Release file is always checked against the distro's keyring.
import { accessSync, constants } from 'node:fs';
import { OstError } from '../core/errors.js';

/**
 * Debian's archive keyring (package debian-archive-keyring on Debian/Ubuntu and Fedora/EL). Passed
 * explicitly: without it debootstrap 1.0.128 only warns when its default keyring is missing and goes on
 * unchecked over http.
 */
export const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

export interface DebootstrapSpec {
  suite: string;
  mirror: string;
  target: string;
  variant?: string;
  components: string[];
  include: string[];
  /** The keyring the mirror's Release file must be signed with (default: Debian's). */
  keyring?: string;
}

/**
 * argv for debootstrap (needs root). `--force-check-gpg`: a Release without a valid signature is an error,
 * never an unchecked fallback; `--no-check-gpg` is never passed.
 */
export function debootstrapArgv(s: DebootstrapSpec): string[] {
  const argv = ['debootstrap', `--keyring=${s.keyring ?? DEBIAN_KEYRING}`, '--force-check-gpg'];
  if (s.variant) argv.push(`--variant=${s.variant}`);
  argv.push(`--components=${s.components.join(',')}`);
  if (s.include.length > 0) argv.push(`--include=${s.include.join(',')}`);
  argv.push(s.suite, s.target, s.mirror);
  return argv;
}

/** Throws an OstError naming the package to install when `keyring` is missing or unreadable. */
export function requireKeyring(keyring: string = DEBIAN_KEYRING): void {
  try {
    accessSync(keyring, constants.R_OK);
  } catch {
    throw new OstError(
      `debootstrap checks the mirror's signature with ${keyring}, which is not installed`,
      'install it with `apt-get install debian-archive-keyring` (Debian/Ubuntu) or `dnf install debian-keyring` (Fedora/EL)',
    );
  }
}
