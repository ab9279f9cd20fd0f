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

/** Read a YAML file; unreadable or invalid YAML throws a ConfigError at once. */
export function readYamlConfig(file: string, notFoundHint: string): ConfigFile {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
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
  const lineOf = (p: KeyPath): number | undefined => {
    for (let n = p.length; n >= 0; n--) {
      const node = doc.getIn(p.slice(0, n), true) as Node | undefined;
      if (node && typeof node === 'object' && 'range' in node && node.range)
        return lc.linePos(node.range[0]).line;
    }
    return undefined;
  };
  const problems: ConfigProblem[] = [];
  const add = (p: KeyPath, message: string) =>
    problems.push({ file: abs, path: formatKeyPath(p), message, line: lineOf(p) });
  return {
    file: abs,
    data: doc.toJS(),
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
