// Shared by every config reader: read YAML keeping positions, and collect problems with file, line and key path.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { LineCounter, type Node, parseDocument } from 'yaml';
import { ConfigError, type ConfigProblem } from './errors.js';

export type KeyPath = (string | number)[];

/** `layers[1].steps[0].script` */
export function formatKeyPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const k of p) {
    if (typeof k === 'number') out += `[${k}]`;
    else out += out ? `.${String(k)}` : String(k);
  }
  return out;
}

/** A parsed config file and the problems found in it so far. */
export interface ConfigFile {
  file: string;
  data: unknown;
  problems: ConfigProblem[];
  /** Record a problem at a key path (its line is looked up in the YAML). */
  add(p: KeyPath, message: string): void;
  /** Record zod issues. */
  addIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): void;
  /** Throw every recorded problem, if any. */
  throwIfProblems(): void;
}

/** Read a config file's text; a missing or unreadable file is a ConfigError. */
function readText(abs: string, notFoundHint: string): string {
  try {
    return readFileSync(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError([
      {
        file: abs,
        path: '',
        message: code === 'ENOENT' ? `file not found; ${notFoundHint}` : `cannot read: ${code}`,
      },
    ]);
  }
}

/** Problems collected against one parsed document, with lines looked up by key path. */
function collector(abs: string, data: unknown, lineOf: (p: KeyPath) => number | undefined): ConfigFile {
  const problems: ConfigProblem[] = [];
  const add = (p: KeyPath, message: string) =>
    problems.push({ file: abs, path: formatKeyPath(p), message, line: lineOf(p) });
  return {
    file: abs,
    data,
    problems,
    add,
    addIssues: (issues) => {
      for (const i of issues)
        add(
          i.path.filter((k): k is string | number => typeof k !== 'symbol'),
          i.message,
        );
    },
    throwIfProblems: () => {
      if (problems.length > 0) throw new ConfigError(problems);
    },
  };
}

/** The line of the deepest node on a key path that the document has. */
function lineLookup(doc: ReturnType<typeof parseDocument>, lc: LineCounter) {
  return (p: KeyPath): number | undefined => {
    for (let n = p.length; n >= 0; n--) {
      const node = doc.getIn(p.slice(0, n), true) as Node | undefined;
      if (node && typeof node === 'object' && 'range' in node && node.range)
        return lc.linePos(node.range[0]).line;
    }
    return undefined;
  };
}

/** Read a YAML file; unreadable or invalid YAML throws a ConfigError at once. */
export function readYamlConfig(file: string, notFoundHint: string): ConfigFile {
  const abs = path.resolve(file);
  const text = readText(abs, notFoundHint);
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => ({
        file: abs,
        path: '',
        line: lc.linePos(e.pos[0]).line,
        message: `not valid YAML: ${e.message.split('\n')[0]}`,
      })),
    );
  }
  return collector(abs, doc.toJS(), lineLookup(doc, lc));
}

/**
 * Read a JSON file as OST does: lines whose first character is `#` are comments (blanked, so line
 * numbers stay). JSON.parse decides what is valid; the same text read as YAML (JSON is YAML) gives the
 * line of each key path and finds duplicated keys, which JSON.parse would silently drop.
 */
export function readJsonConfig(file: string, notFoundHint: string): ConfigFile {
  const abs = path.resolve(file);
  const text = readText(abs, notFoundHint)
    .split('\n')
    .map((l) => (l.startsWith('#') ? '' : l))
    .join('\n');
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([{ file: abs, path: '', message: `not valid JSON: ${(err as Error).message}` }]);
  }
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  const dup = doc.errors.filter((e) => e.code === 'DUPLICATE_KEY');
  if (dup.length > 0) {
    throw new ConfigError(
      dup.map((e) => ({
        file: abs,
        path: '',
        line: lc.linePos(e.pos[0]).line,
        message: 'a key appears twice in the same object; JSON readers keep only the last: remove one',
      })),
    );
  }
  // text JSON accepts but YAML does not (tabs as indentation): still read, without line numbers
  return collector(abs, data, doc.errors.length > 0 ? () => undefined : lineLookup(doc, lc));
}
