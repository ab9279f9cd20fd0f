// The layering of src/ as data: read a tree's import graph (static imports, `import type`, `export … from`,
// dynamic `import()`) and find what breaks the floors (cli → builder | launcher → guest → tools → core),
// every cycle between files (type-only imports included) and every file over the length limit. Pure: it
// takes file texts and returns problems, so its own tests run it on small synthetic trees.
import * as path from 'node:path';

/** One import of a file, as written. */
export interface ImportRef {
  specifier: string;
  /** `import type …`, `export type … from`, or every named binding marked `type`. */
  typeOnly: boolean;
  /** `import('…')`. */
  dynamic: boolean;
  /** 1-based line of the import. */
  line: number;
}

/** An import between two files of the tree. */
export interface ImportEdge extends ImportRef {
  from: string;
  to: string;
}

export type ProblemKind = 'upward-import' | 'cross-import' | 'no-floor' | 'cycle' | 'too-long';

export interface LayeringProblem {
  kind: ProblemKind;
  /** The files involved (for a cycle: in cycle order). */
  files: string[];
  message: string;
}

/** Floors from top to bottom; files of one floor may import their own floor and any floor below. */
export const FLOORS: readonly (readonly string[])[] = [
  ['cli'],
  ['builder', 'launcher'],
  ['guest'],
  ['tools'],
  ['core'],
];

export const MAX_LINES = 400;

/** The source with comments blanked out (strings and template literals kept; newlines kept for line numbers). */
export function stripComments(src: string): string {
  let out = '';
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    const next = src[i + 1];
    if (c === '/' && next === '/') {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (c === '/' && next === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end === -1 ? src.length : end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else if (c === "'" || c === '"' || c === '`') {
      let j = i + 1;
      while (j < src.length && src[j] !== c) j += src[j] === '\\' ? 2 : 1;
      out += src.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

const lineAt = (text: string, index: number) => text.slice(0, index).split('\n').length;

// `import|export [type] <clause> from '<spec>'`, at the start of a statement
const STATIC_FROM =
  /(^|[;\n{}])\s*(import|export)\s+(type\s+)?((?:[\w$]+\s*,\s*)?(?:\{[^}]*\}|\*(?:\s+as\s+[\w$]+)?|[\w$]+))\s*from\s*(['"])([^'"\n]+)\5/g;
// `import '<spec>'` (for its side effects)
const BARE_IMPORT = /(^|[;\n{}])\s*import\s*(['"])([^'"\n]+)\2/g;
// `import('<spec>')`, in code or in a type
const DYNAMIC_IMPORT = /\bimport\s*\(\s*(['"])([^'"\n]+)\1\s*\)/g;

/** Every import of a TypeScript source, in order. */
export function importsOf(source: string): ImportRef[] {
  const text = stripComments(source);
  const refs: { index: number; ref: ImportRef }[] = [];
  // a match starts with the character before the statement: the statement starts at its keyword
  const at = (m: RegExpMatchArray) => (m.index ?? 0) + m[0].search(/\b(import|export)\b/);
  for (const m of text.matchAll(STATIC_FROM)) {
    const clause = m[4] as string;
    const named = /\{([^}]*)\}/.exec(clause)?.[1];
    const bindings = (named ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const allTyped =
      named !== undefined &&
      !/^[\w$]+\s*,/.test(clause) &&
      bindings.length > 0 &&
      bindings.every((b) => b.startsWith('type '));
    const index = at(m);
    const typeOnly = m[3] !== undefined || allTyped;
    refs.push({
      index,
      ref: { specifier: m[6] as string, typeOnly, dynamic: false, line: lineAt(text, index) },
    });
  }
  for (const m of text.matchAll(BARE_IMPORT)) {
    const index = at(m);
    refs.push({
      index,
      ref: { specifier: m[3] as string, typeOnly: false, dynamic: false, line: lineAt(text, index) },
    });
  }
  for (const m of text.matchAll(DYNAMIC_IMPORT)) {
    const index = m.index ?? 0;
    refs.push({
      index,
      ref: { specifier: m[2] as string, typeOnly: false, dynamic: true, line: lineAt(text, index) },
    });
  }
  return refs.sort((a, b) => a.index - b.index).map((r) => r.ref);
}

/** The file of the tree a relative specifier names (`./x.js` is `./x.ts`), or undefined (a package, node:…). */
export function resolveSpecifier(
  from: string,
  specifier: string,
  files: ReadonlySet<string>,
): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const base = path.posix.join(path.posix.dirname(from), specifier);
  const candidates = [base.replace(/\.js$/, '.ts'), base, `${base}.ts`, `${base}/index.ts`];
  return candidates.find((c) => files.has(c));
}

/** Every import between files of the tree (file path → source text; posix paths such as `src/core/exec.ts`). */
export function importGraph(files: ReadonlyMap<string, string>): ImportEdge[] {
  const names = new Set(files.keys());
  const edges: ImportEdge[] = [];
  for (const [file, text] of files) {
    for (const ref of importsOf(text)) {
      const to = resolveSpecifier(file, ref.specifier, names);
      if (to) edges.push({ ...ref, from: file, to });
    }
  }
  return edges;
}

/** The floor a file is on (`src/builder/plan/load.ts` → `builder`), or undefined. */
export function floorOf(file: string, root = 'src'): string | undefined {
  const rel = path.posix.relative(root, file);
  const top = rel.split('/')[0];
  return top && rel.includes('/') && FLOORS.some((f) => f.includes(top)) ? top : undefined;
}

const levelOf = (floor: string) => FLOORS.findIndex((f) => f.includes(floor));

/** Imports from a lower floor to a higher one, between builder and launcher, and files on no floor. */
export function floorProblems(
  files: Iterable<string>,
  edges: readonly ImportEdge[],
  root = 'src',
): LayeringProblem[] {
  const problems: LayeringProblem[] = [];
  for (const f of files) {
    if (floorOf(f, root) === undefined)
      problems.push({
        kind: 'no-floor',
        files: [f],
        message: `${f} is on no floor (${FLOORS.flat().join(', ')}): put it in one of them`,
      });
  }
  for (const e of edges) {
    const a = floorOf(e.from, root);
    const b = floorOf(e.to, root);
    if (a === undefined || b === undefined || a === b) continue;
    const where = `${e.from}:${e.line} imports ${e.to}`;
    if (levelOf(a) > levelOf(b))
      problems.push({
        kind: 'upward-import',
        files: [e.from, e.to],
        message: `${where}: ${a} is below ${b}; a floor imports only itself and the floors below it`,
      });
    else if (levelOf(a) === levelOf(b))
      problems.push({
        kind: 'cross-import',
        files: [e.from, e.to],
        message: `${where}: ${a} and ${b} never import each other (they meet only through the floors below)`,
      });
  }
  return problems;
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
function cyclicComponents(nodes: readonly string[], out: ReadonlyMap<string, string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const comps: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of out.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      for (;;) {
        const w = stack.pop() as string;
        onStack.delete(w);
        comp.push(w);
        if (w === v) break;
      }
      if (comp.length > 1 || (out.get(v) ?? []).includes(v)) comps.push(comp.sort());
    }
  };
  for (const v of nodes) if (!index.has(v)) visit(v);
  return comps;
}

/** A shortest cycle through `start` inside one component, as files in order (start first). */
function cycleThrough(
  start: string,
  comp: ReadonlySet<string>,
  out: ReadonlyMap<string, string[]>,
): string[] {
  const prev = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift() as string;
    for (const w of out.get(v) ?? []) {
      if (!comp.has(w)) continue;
      if (w === start) {
        const cycle = [v];
        while (cycle[0] !== start) cycle.unshift(prev.get(cycle[0] as string) as string);
        return cycle;
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start];
}

/** Every import cycle (type-only imports count: a cycle of types still ties the files together). */
export function cycleProblems(edges: readonly ImportEdge[]): LayeringProblem[] {
  const out = new Map<string, string[]>();
  for (const e of edges) out.set(e.from, [...new Set([...(out.get(e.from) ?? []), e.to])]);
  const nodes = [...new Set(edges.flatMap((e) => [e.from, e.to]))].sort();
  return cyclicComponents(nodes, out).map((comp) => {
    const cycle = cycleThrough(comp[0] as string, new Set(comp), out);
    const steps = cycle.map((f, i) => {
      const to = cycle[(i + 1) % cycle.length] as string;
      const e = edges.filter((x) => x.from === f && x.to === to);
      const typeOnly = e.length > 0 && e.every((x) => x.typeOnly);
      return `${f}:${e[0]?.line ?? '?'}${typeOnly ? ' (type-only)' : ''}`;
    });
    const rest = comp.filter((f) => !cycle.includes(f));
    return {
      kind: 'cycle' as const,
      files: cycle,
      message:
        `import cycle: ${[...steps, cycle[0]].join(' → ')}` +
        (rest.length > 0 ? `; tied into it as well: ${rest.join(', ')}` : '') +
        '; move what they share to the file it belongs to',
    };
  });
}

/** Lines of a text, as wc -l counts them for a file ending in a newline. */
export function lineCount(text: string): number {
  if (text === '') return 0;
  const n = text.split('\n').length;
  return text.endsWith('\n') ? n - 1 : n;
}

/** Files longer than `max` lines. */
export function lengthProblems(files: ReadonlyMap<string, string>, max = MAX_LINES): LayeringProblem[] {
  const problems: LayeringProblem[] = [];
  for (const [file, text] of files) {
    const n = lineCount(text);
    if (n > max)
      problems.push({
        kind: 'too-long',
        files: [file],
        message: `${file} has ${n} lines (at most ${max}): split it into files named after what each does`,
      });
  }
  return problems;
}

/** Every layering problem of a tree: floors, cycles, lengths. */
export function layeringProblems(
  files: ReadonlyMap<string, string>,
  opts: { root?: string; maxLines?: number } = {},
): LayeringProblem[] {
  const edges = importGraph(files);
  return [
    ...floorProblems(files.keys(), edges, opts.root),
    ...cycleProblems(edges),
    ...lengthProblems(files, opts.maxLines),
  ];
}

/** The problems as one report, a line each, grouped by kind. */
export function formatProblems(problems: readonly LayeringProblem[]): string {
  if (problems.length === 0) return 'no layering problems';
  const kinds: ProblemKind[] = ['upward-import', 'cross-import', 'no-floor', 'cycle', 'too-long'];
  const lines = [`${problems.length} layering problem${problems.length === 1 ? '' : 's'}:`];
  for (const k of kinds)
    for (const p of problems.filter((x) => x.kind === k)) lines.push(`  [${k}] ${p.message}`);
  return lines.join('\n');
}
