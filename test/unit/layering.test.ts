// The layering of src/ as a test: imports go down the floors (cli → builder | launcher → guest → tools →
// core; builder and launcher never import each other), no import cycle between files (type-only imports
// count), no file over 400 lines. The checker itself is tested in import-graph.test.ts.
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatProblems, importGraph, layeringProblems } from '../helpers/import-graph.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Every .ts file under src/, keyed by its posix path from the checkout (`src/core/exec.ts`). */
function sourceTree(): Map<string, string> {
  const files = new Map<string, string>();
  const entries = readdirSync(path.join(repo, 'src'), { recursive: true, withFileTypes: true });
  for (const e of entries) {
    if (!e.isFile() || !e.name.endsWith('.ts')) continue;
    const abs = path.join(e.parentPath, e.name);
    files.set(path.relative(repo, abs).split(path.sep).join('/'), readFileSync(abs, 'utf8'));
  }
  return new Map([...files].sort(([a], [b]) => a.localeCompare(b)));
}

describe('the layering of src/', () => {
  const files = sourceTree();

  it('reads the real tree', () => {
    expect(files.size).toBeGreaterThan(50);
    expect(importGraph(files).length).toBeGreaterThan(100);
  });

  it('has no upward import, no builder ⇄ launcher import, no cycle and no file over 400 lines', () => {
    // the whole list in the failure message: every offender, a line each
    expect(formatProblems(layeringProblems(files))).toBe('no layering problems');
  });
});
