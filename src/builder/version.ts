// The builder version goes into every layer key: bump BUILD_FORMAT when the way layers are made changes.
import { readFileSync } from 'node:fs';

/** Increase when a change in the builder must rebuild every layer. */
export const BUILD_FORMAT = 4;

function packageVersion(): string {
  try {
    const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    if (pkg && typeof pkg === 'object' && 'version' in pkg && typeof pkg.version === 'string')
      return pkg.version;
  } catch {
    // fall through
  }
  return '0.0.0';
}

/** `ost-<package version>/format-<n>` */
export const BUILDER_VERSION = `ost-${packageVersion()}/format-${BUILD_FORMAT}`;
