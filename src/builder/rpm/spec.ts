// The spec of one layer RPM: data only (no scripts, no dependency generation, no debuginfo, no strip).
import { InternalError, UsageError } from '../../core/errors.js';
import { shellQuote } from '../../core/exec.js';
import { oneLine } from '../../core/lines.js';

/** Where every layer installs (relocatable: `rpm --prefix`, `dnf --installroot`). */
export const IMAGES_PREFIX = '/usr/share/ost-images';

/** Default payload: zstd level 9, all cores — 27× faster to pack and 3.7× faster to install than w9T4.xzdio, 1.26× the size (BENCHMARKS.md). */
export const DEFAULT_PAYLOAD = 'w9T0.zstdio';

/** ost-images' payload, for comparison. */
export const OST_IMAGES_PAYLOAD = 'w9T4.xzdio';

export interface RpmFile {
  /** Absolute path on the build host. */
  src: string;
  /** File name under the prefix. */
  name: string;
  mode: string;
}

export interface RpmSpec {
  name: string;
  version: string;
  release: string;
  summary: string;
  description: string;
  provides: string[];
  requires: string[];
  payload: string;
  files: RpmFile[];
}

const PAYLOAD = /^w[0-9]{1,2}(T[0-9]*)?\.(xzdio|zstdio|gzdio|bzdio|ufdio)$/;

/** Check a payload string such as w3T0.zstdio; returns an error message or undefined. */
export function payloadProblem(p: string): string | undefined {
  return PAYLOAD.test(p)
    ? undefined
    : `bad payload ${p}: expected w<level>[T<threads>].<zstdio|xzdio|gzdio>, e.g. ${DEFAULT_PAYLOAD}`;
}

/**
 * Text as rpm must take it literally: `%` doubled, so that no macro (`%(cmd)` runs a shell on the build
 * host) is expanded. Every value a set file or a path contributes goes through this.
 */
export function specLiteral(s: string): string {
  return s.replace(/%/g, '%%');
}

/** A one-line tag's value (Summary, Provides, …), literal: a line break would start a new tag or section. */
function tagValue(tag: string, v: string): string {
  return specLiteral(oneLine(v, { file: 'RPM spec', field: tag }));
}

/**
 * The %description body: literal, and a line that begins with `%` indented by one space — rpm looks for
 * section headers (`%post`, `%files`) after expanding `%%`, so such a line would end the description and
 * add a scriptlet run as root on every host that installs the package. A lone `\r` breaks a line too, so
 * none reaches the spec and every line is checked.
 */
export function specDescription(text: string): string {
  return text
    .split(/\r\n|\r|\n/)
    .map((line) => {
      const lit = specLiteral(line);
      return /^\s*%/.test(lit) ? ` ${lit}` : lit;
    })
    .join('\n');
}

/**
 * A name in %files: rpm expands a %files path twice (once as a spec line, once as a path), splits it on
 * spaces and globs it, so only plain names are allowed (layer files are named after validated names).
 */
function fileName(name: string): string {
  if (!/^[A-Za-z0-9._+-]+$/.test(name))
    throw new InternalError(
      `RPM file name ${JSON.stringify(name)}: only letters, digits and . _ + - are allowed`,
    );
  return name;
}

/** Render the spec text. Files are hard-linked into the buildroot (no multi-GB copies). */
export function renderSpec(s: RpmSpec): string {
  const install = s.files.map((f) => {
    // single-quoted for the %install scriptlet (rpm runs it with /bin/sh)
    const src = shellQuote(tagValue('file source', f.src));
    const dest = shellQuote(fileName(f.name));
    return `ln -f ${src} "%{buildroot}${IMAGES_PREFIX}/"${dest} 2>/dev/null || cp --sparse=always ${src} "%{buildroot}${IMAGES_PREFIX}/"${dest}`;
  });
  const badPayload = payloadProblem(s.payload);
  if (badPayload)
    throw new UsageError(badPayload, `${DEFAULT_PAYLOAD} is the default; see ost publish-images --help`);
  return [
    `%global _binary_payload ${oneLine(s.payload, { file: 'RPM spec', field: 'payload' })}`,
    '%global __os_install_post %{nil}',
    '%global debug_package %{nil}',
    '%define _build_id_links none',
    '%define __spec_install_post %{nil}',
    '',
    `Name: ${tagValue('Name', s.name)}`,
    `Version: ${tagValue('Version', s.version)}`,
    `Release: ${tagValue('Release', s.release)}`,
    `Summary: ${tagValue('Summary', s.summary)}`,
    'License: Various (guest operating system image)',
    'URL: https://github.com/oVirt/ost-images',
    'BuildArch: noarch',
    'AutoReqProv: no',
    `Prefix: ${IMAGES_PREFIX}`,
    ...s.provides.map((p) => `Provides: ${tagValue('Provides', p)}`),
    ...s.requires.map((r) => `Requires: ${tagValue('Requires', r)}`),
    '',
    '%description',
    specDescription(s.description),
    '',
    '%install',
    `mkdir -p "%{buildroot}${IMAGES_PREFIX}"`,
    ...install,
    '',
    '%files',
    ...s.files.map(
      (f) => `%attr(${tagValue('mode', f.mode)},root,root) ${IMAGES_PREFIX}/${fileName(f.name)}`,
    ),
    '',
  ].join('\n');
}

/** `YYYYMMDDHHMM` in UTC: the release of a layer built at that time. */
export function releaseFor(builtAt: string): string {
  const d = new Date(builtAt);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}`;
}
