// Values that go into line-based files (ssh_config, the inventory, hosts, env.sh, dnsmasq.conf, an RPM
// spec): a carriage return or a newline in one would start a line of its own choosing (a ProxyCommand, a
// dhcp-script=, a %post), so every renderer passes each value through here and refuses it.
import { OstError } from './errors.js';

/** Where a value refused by `oneLine` goes: the file being rendered and the field. */
export interface LineContext {
  file: string;
  field: string;
}

/**
 * `value`, checked to hold no `\r` or `\n`. Names are refused earlier (they follow one rule); this is
 * the last guard for every value, paths and URLs included.
 */
export function oneLine(value: string, where: LineContext): string {
  if (/[\r\n]/.test(value))
    throw new OstError(
      `${where.file}: the ${where.field} ${JSON.stringify(value)} holds a line break, which would start a line of its own there`,
      'give a value without line breaks (rename the file or folder it comes from)',
    );
  return value;
}

/** `oneLine` over every string of `values` (field name → value), for a renderer's whole input at once. */
export function oneLineAll(values: Record<string, unknown>, file: string): void {
  for (const [field, v] of Object.entries(values)) if (typeof v === 'string') oneLine(v, { file, field });
}
