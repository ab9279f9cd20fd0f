// The layering checker (test/helpers/import-graph.ts) on small synthetic trees: it must see each kind of
// problem, or the real-tree test (layering.test.ts) passing would prove nothing.
import { describe, expect, it } from 'vitest';
import {
  cycleProblems,
  floorOf,
  formatProblems,
  importGraph,
  importsOf,
  layeringProblems,
  lineCount,
  resolveSpecifier,
} from '../helpers/import-graph.js';

const tree = (files: Record<string, string>) => new Map(Object.entries(files));

describe('importsOf', () => {
  it('reads static, type-only, re-exports, side-effect and dynamic imports, with their lines', () => {
    const src = [
      "import * as fs from 'node:fs/promises';", // 1
      "import { a, type B } from './a.js';", // 2
      "import type { C } from './c.js';", // 3
      'import {', // 4
      '  type D,',
      '  type E,',
      "} from './d.js';", // 7
      "import def, { f } from './f.js';", // 8
      "export { g } from './g.js';", // 9
      "export * from './h.js';", // 10
      "export type { I } from './i.js';", // 11
      "import './side.js';", // 12
      "// import { nope } from './comment.js';", // 13
      '/* import { nope2 } from "./block.js"; */', // 14
      "const m = await import('./dyn.js');", // 15
      "type T = import('./typed.js').T;", // 16
      "export * as ns from './ns.js';", // 17
    ].join('\n');
    expect(importsOf(src).map((r) => [r.specifier, r.typeOnly, r.dynamic, r.line])).toEqual([
      ['node:fs/promises', false, false, 1],
      ['./a.js', false, false, 2],
      ['./c.js', true, false, 3],
      ['./d.js', true, false, 4],
      ['./f.js', false, false, 8],
      ['./g.js', false, false, 9],
      ['./h.js', false, false, 10],
      ['./i.js', true, false, 11],
      ['./side.js', false, false, 12],
      ['./dyn.js', false, true, 15],
      ['./typed.js', false, true, 16],
      ['./ns.js', false, false, 17],
    ]);
  });

  it('is not fooled by an export that is not a re-export', () => {
    const src = "export interface X {\n  a: string;\n}\nexport const y = 1;\nexport { z } from './z.js';\n";
    expect(importsOf(src).map((r) => [r.specifier, r.line])).toEqual([['./z.js', 5]]);
  });

  it('resolves ./x.js to x.ts, and leaves packages alone', () => {
    const files = new Set(['src/core/a.ts', 'src/core/b/index.ts']);
    expect(resolveSpecifier('src/tools/t.ts', '../core/a.js', files)).toBe('src/core/a.ts');
    expect(resolveSpecifier('src/core/a.ts', './b', files)).toBe('src/core/b/index.ts');
    expect(resolveSpecifier('src/core/a.ts', 'execa', files)).toBeUndefined();
    expect(resolveSpecifier('src/core/a.ts', 'node:fs', files)).toBeUndefined();
  });
});

describe('layeringProblems', () => {
  it('passes a tree whose imports go down or stay on their floor', () => {
    const t = tree({
      'src/cli/main.ts': "import { b } from '../builder/b.js';\nimport { l } from '../launcher/l.js';\n",
      'src/builder/b.ts': "import { g } from '../guest/g.js';\nimport { b2 } from './sub/b2.js';\n",
      'src/builder/sub/b2.ts': "import { run } from '../../core/exec.js';\n",
      'src/launcher/l.ts': "import { t } from '../tools/t.js';\n",
      'src/guest/g.ts': "import { t } from '../tools/t.js';\n",
      'src/tools/t.ts': "import { run } from '../core/exec.js';\n",
      'src/core/exec.ts': "import { execa } from 'execa';\n",
    });
    expect(layeringProblems(t)).toEqual([]);
    expect(formatProblems([])).toBe('no layering problems');
  });

  it('finds an upward import (core → tools, even type-only) and builder ⇄ launcher', () => {
    const t = tree({
      'src/core/exec.ts': "import type { T } from '../tools/t.js';\n",
      'src/tools/t.ts': 'export type T = string;\n',
      'src/builder/b.ts': "\nimport { l } from '../launcher/l.js';\n",
      'src/launcher/l.ts': 'export const l = 1;\n',
      'src/guest/g.ts': "const c = await import('../cli/main.js');\n",
      'src/cli/main.ts': 'export {};\n',
    });
    const problems = layeringProblems(t);
    expect(problems.map((p) => [p.kind, ...p.files])).toEqual([
      ['upward-import', 'src/core/exec.ts', 'src/tools/t.ts'],
      ['cross-import', 'src/builder/b.ts', 'src/launcher/l.ts'],
      ['upward-import', 'src/guest/g.ts', 'src/cli/main.ts'],
    ]);
    const text = formatProblems(problems);
    expect(text).toContain('3 layering problems');
    expect(text).toContain('src/core/exec.ts:1 imports src/tools/t.ts: core is below tools');
    expect(text).toContain('src/builder/b.ts:2 imports src/launcher/l.ts');
  });

  it('finds a 3-file cycle and names its files in order', () => {
    const t = tree({
      'src/core/a.ts': "import { b } from './b.js';\n",
      'src/core/b.ts': "import { c } from './c.js';\n",
      'src/core/c.ts': "\n\nimport { a } from './a.js';\n",
    });
    const problems = layeringProblems(t);
    expect(problems).toHaveLength(1);
    expect(problems[0]?.kind).toBe('cycle');
    expect(problems[0]?.files).toEqual(['src/core/a.ts', 'src/core/b.ts', 'src/core/c.ts']);
    expect(problems[0]?.message).toContain(
      'import cycle: src/core/a.ts:1 → src/core/b.ts:1 → src/core/c.ts:3 → src/core/a.ts',
    );
  });

  it('counts a cycle made only of type imports', () => {
    const t = tree({
      'src/builder/plan.ts': "export interface Entry { hit?: import('./cache.js').Hit }\n",
      'src/builder/cache.ts': "import type { Entry } from './plan.js';\nexport interface Hit { e: Entry }\n",
    });
    const problems = cycleProblems(importGraph(t));
    expect(problems.map((p) => p.files)).toEqual([['src/builder/cache.ts', 'src/builder/plan.ts']]);
    expect(problems[0]?.message).toContain('src/builder/cache.ts:1 (type-only) → src/builder/plan.ts:1');
  });

  it('finds a file importing itself, and names the rest of a bigger knot', () => {
    const t = tree({
      'src/core/self.ts': "import { x } from './self.js';\n",
      'src/tools/a.ts': "import { b } from './b.js';\nimport { c } from './c.js';\n",
      'src/tools/b.ts': "import { a } from './a.js';\n",
      'src/tools/c.ts': "import { a } from './a.js';\n",
    });
    const problems = cycleProblems(importGraph(t));
    expect(problems.map((p) => p.files)).toEqual([
      ['src/core/self.ts'],
      ['src/tools/a.ts', 'src/tools/b.ts'],
    ]);
    expect(problems[1]?.message).toContain('tied into it as well: src/tools/c.ts');
  });

  it('finds a file over the line limit, and a file on no floor', () => {
    const t = tree({
      'src/core/long.ts': '// x\n'.repeat(401),
      'src/core/limit.ts': '// x\n'.repeat(400),
      'src/index.ts': 'export {};\n',
      'src/misc/x.ts': 'export {};\n',
    });
    const problems = layeringProblems(t);
    expect(problems.map((p) => [p.kind, ...p.files])).toEqual([
      ['no-floor', 'src/index.ts'],
      ['no-floor', 'src/misc/x.ts'],
      ['too-long', 'src/core/long.ts'],
    ]);
    expect(formatProblems(problems)).toContain('src/core/long.ts has 401 lines (at most 400)');
    expect(floorOf('src/builder/plan/load.ts')).toBe('builder');
    expect(lineCount('a\nb\n')).toBe(2);
    expect(lineCount('a\nb')).toBe(2);
  });
});
