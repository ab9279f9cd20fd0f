// No function in src/ over 80 lines (a data table aside: one object or array literal returned), since a
// long function with branches in every part is where defects hide.
// The measure is the TypeScript parser's (test/helpers/function-length.ts), checked on a synthetic source
// first so that it is seen to find one.
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { functionSpans, longFunctions } from '../helpers/function-length.js';
import { REPO_ROOT } from '../helpers/sets.js';

const MAX_FUNCTION_LINES = 80;

function sources(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) out.set(path.relative(REPO_ROOT, p), readFileSync(p, 'utf8'));
    }
  };
  walk(dir);
  return out;
}

describe('function length', () => {
  it('measures declarations, methods, arrows and callbacks by the lines they span', () => {
    const body = (n: number) => Array.from({ length: n }, (_, i) => `  const v${i} = ${i};`).join('\n');
    const text = [
      `export function long(): void {\n${body(81)}\n}`,
      `const short = () => {\n${body(3)}\n};`,
      `class C {\n  method(): void {\n${body(10)}\n  }\n}`,
      `[1].map((x) => {\n${body(90)}\n  return x;\n});`,
      `function table(): Record<string, string> {\n  return {\n${Array.from({ length: 90 }, (_, i) => `    k${i}: 'v',`).join('\n')}\n  };\n}`,
    ].join('\n');
    const spans = functionSpans('x.ts', text);
    expect(spans.map((s) => [s.name, s.lines])).toEqual([
      ['long', 83],
      ['short', 5],
      ['method', 12],
      ['(callback of [1].map)', 93],
      ['table', 94],
    ]);
    expect(spans.find((s) => s.name === 'table')?.data).toBe(true);
    expect(longFunctions(new Map([['x.ts', text]]), 80).map((s) => s.name)).toEqual([
      'long',
      '(callback of [1].map)',
    ]);
  });

  it(`finds no function in src/ over ${MAX_FUNCTION_LINES} lines`, () => {
    const long = longFunctions(sources(path.join(REPO_ROOT, 'src')), MAX_FUNCTION_LINES);
    expect(long.map((f) => `${f.file}:${f.line} ${f.name} (${f.lines} lines)`)).toEqual([]);
  });
});
