// domain-templates/: network, domain, NIC and disk templates with {{placeholders}}; users may override any
// of them by passing a directory that holds their own copies (missing files fall back to the bundled ones).
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../core/errors.js';
import { parseXml, type XmlNode } from './xml.js';

export type TemplateName = 'network' | 'domain' | 'nic' | 'disk';

/** The templates shipped with ost (`<checkout>/domain-templates`). */
export const BUNDLED_TEMPLATES = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../domain-templates',
);

const ROOTS: Record<TemplateName, string> = {
  network: 'network',
  domain: 'domain',
  nic: 'interface',
  disk: 'disk',
};

function escapeXml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** Templates from a user directory (when given) with the bundled ones as fallback. */
export class Templates {
  private cache = new Map<TemplateName, { file: string; text: string }>();

  constructor(readonly userDir?: string) {}

  /** Which file a template comes from. */
  fileOf(name: TemplateName): string {
    const own = this.userDir ? path.join(this.userDir, `${name}.xml`) : undefined;
    return own && existsSync(own) ? own : path.join(BUNDLED_TEMPLATES, `${name}.xml`);
  }

  private load(name: TemplateName): { file: string; text: string } {
    const hit = this.cache.get(name);
    if (hit) return hit;
    const file = this.fileOf(name);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError([{ file, path: '', message: `cannot read template: ${(err as Error).message}` }]);
    }
    const entry = { file, text };
    this.cache.set(name, entry);
    return entry;
  }

  /**
   * Substitute {{placeholders}} (values XML-escaped) and parse. An unknown placeholder, bad XML or the
   * wrong root element is one ConfigError naming the template file.
   */
  render(name: TemplateName, values: Record<string, string | number>): XmlNode {
    const { file, text } = this.load(name);
    const unknown = new Set<string>();
    const filled = text.replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (_m, key: string) => {
      const v = values[key];
      if (v === undefined) {
        unknown.add(key);
        return '';
      }
      return escapeXml(String(v));
    });
    if (unknown.size > 0) {
      throw new ConfigError([
        {
          file,
          path: '',
          message: `unknown placeholder ${[...unknown].map((k) => `{{${k}}}`).join(', ')}; this template can use ${Object.keys(
            values,
          )
            .map((k) => `{{${k}}}`)
            .join(' ')}`,
        },
      ]);
    }
    const parsed = parseXml(filled);
    if ('error' in parsed) {
      throw new ConfigError([
        { file, path: '', line: parsed.line, message: `not valid XML: ${parsed.error}` },
      ]);
    }
    const root = ROOTS[name];
    const keys = Object.keys(parsed.doc);
    const node = parsed.doc[root];
    if (keys.length !== 1 || !node || typeof node !== 'object' || Array.isArray(node)) {
      throw new ConfigError([
        {
          file,
          path: '',
          message: `expected one <${root}> root element, found ${keys.map((k) => `<${k}>`).join(', ') || 'none'}`,
        },
      ]);
    }
    return node;
  }
}
