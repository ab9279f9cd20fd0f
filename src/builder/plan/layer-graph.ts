// The layers of an image set as a graph: names unique, parents known, no parent cycle; along each chain one
// layer per repository name, and the refresh a layer follows (refresh: upstream needs a repository to watch);
// and the order a build takes, parents before children. Every problem is collected, none thrown.
import type { KeyPath } from '../../core/config-file.js';
import type { Layer } from './model.js';
import type { RawImageSet, RawLayer } from './schema.js';

type Add = (p: KeyPath, m: string) => void;

/** Each layer name's first index in the file; a name used again is a problem at its later use. */
export function checkNames(raw: RawImageSet, add: Add): Map<string, number> {
  const firstIndex = new Map<string, number>();
  raw.layers.forEach((l, i) => {
    const prev = firstIndex.get(l.name);
    if (prev !== undefined)
      add(['layers', i, 'name'], `duplicate layer name "${l.name}" (also layers[${prev}])`);
    else firstIndex.set(l.name, i);
  });
  return firstIndex;
}

/** Every parent names another layer of the set. */
export function checkParents(raw: RawImageSet, firstIndex: Map<string, number>, add: Add): void {
  const names = [...firstIndex.keys()];
  raw.layers.forEach((l, i) => {
    if (l.parent !== undefined && !firstIndex.has(l.parent)) {
      add(
        ['layers', i, 'parent'],
        `unknown parent "${l.parent}"; allowed: ${names.filter((n) => n !== l.name).join(', ') || '(no other layers)'}`,
      );
    }
    if (l.parent === l.name) add(['layers', i, 'parent'], `layer "${l.name}" cannot be its own parent`);
  });
}

/** No chain of parents loops; each cycle is reported once. */
export function checkCycles(raw: RawImageSet, firstIndex: Map<string, number>, add: Add): void {
  const reported = new Set<string>();
  raw.layers.forEach((l, i) => {
    const seen: string[] = [];
    let cur: RawLayer | undefined = l;
    while (cur?.parent !== undefined) {
      if (seen.includes(cur.name)) {
        const cycle = seen.slice(seen.indexOf(cur.name));
        const key = [...cycle].sort().join(',');
        if (!reported.has(key) && cycle.length > 1) {
          reported.add(key);
          add(
            ['layers', i, 'parent'],
            `parent cycle: ${[...cycle, cur.name].join(' → ')}; a chain must end at a base layer`,
          );
        }
        break;
      }
      seen.push(cur.name);
      const pi = firstIndex.get(cur.parent);
      cur = pi === undefined ? undefined : raw.layers[pi];
    }
  });
}

/**
 * Along each layer's chain: a repository name is added by one layer only, and the layer's refresh — the
 * default one is set here (a derived layer that installs packages follows its repositories) — has
 * something to follow.
 */
export function checkChains(raw: RawImageSet, layers: Layer[], add: Add): void {
  const byName = new Map(layers.map((l) => [l.name, l]));
  for (const l of layers) {
    const chain: Layer[] = [];
    for (
      let c: Layer | undefined = l;
      c && !chain.includes(c);
      c = c.parent ? byName.get(c.parent) : undefined
    )
      chain.unshift(c);
    const names = new Map<string, string>();
    for (const c of chain.slice(0, -1)) for (const r of c.repos) names.set(r.name, c.name);
    l.repos.forEach((r, j) => {
      const other = names.get(r.name);
      if (other)
        add(
          ['layers', l.index, 'repos', j, 'name'],
          `repository ${r.name} is already added by ${other}; rename one`,
        );
      names.set(r.name, l.name);
    });
    const watched = chain.some((c) => c.repos.length > 0 || c.base?.kind === 'debootstrap');
    // default: a derived layer that installs packages follows its repositories (once a day when none is
    // known); others change only with their definition
    const installs =
      l.steps.some((st) => st.kind === 'install' || st.kind === 'dependencies' || st.kind === 'upgrade') ||
      l.repos.length > 0;
    if (raw.layers[l.index]?.refresh === undefined && l.parent !== undefined && installs)
      l.refresh = watched ? 'upstream' : 'daily';
    if (l.refresh === 'upstream' && !watched)
      add(
        ['layers', l.index, 'refresh'],
        'upstream: no package repository is known for this layer; declare them under repos:, or use refresh: daily or never',
      );
  }
}

/** Parents before children, keeping file order otherwise; layers in a cycle are left at the end. */
export function topoSort(layers: Layer[]): Layer[] {
  const out: Layer[] = [];
  const placed = new Set<string>();
  let progress = true;
  while (progress) {
    progress = false;
    for (const l of layers) {
      if (placed.has(l.name)) continue;
      if (l.parent === undefined || placed.has(l.parent)) {
        out.push(l);
        placed.add(l.name);
        progress = true;
      }
    }
  }
  for (const l of layers) if (!placed.has(l.name)) out.push(l);
  return out;
}
