// Reads every import in src/ and holds the layer order of ARCHITECTURE.md: no cycle between files or
// folders, no import against the order, nothing from outside src/ but the shaders.
import { describe, expect, it } from 'vitest';
import ts from 'typescript';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';

const repo = resolve(import.meta.dirname, '..');
const srcDir = join(repo, 'src');

/**
 * What each layer may import besides itself (a file at src/ root, like index.ts, is the layer
 * `root`). Leaf modules that a lower layer may reach into are named by path.
 */
const ALLOWED: Record<string, string[]> = {
  common: [],
  model: ['common'],
  gpu: ['common', 'model'],
  // The CPU (WebAssembly) backend: beside gpu, sharing only its row contract and KV bookkeeping.
  cpu: ['common', 'model', 'gpu/kv.ts', 'gpu/types.ts'],
  // Pure logic: the pipeline's contract (a leaf), never WebGPU or WebRTC.
  speculative: ['common', 'pipeline/contract.ts'],
  pipeline: ['common', 'model', 'gpu', 'cpu'],
  // Stands apart: only the signalling wire types are shared, with mesh.
  server: ['common'],
  mesh: ['common', 'model', 'gpu', 'pipeline', 'server/signal-protocol.ts'],
  app: ['common', 'model', 'gpu', 'cpu', 'speculative', 'pipeline', 'mesh', 'server/signal-protocol.ts'],
  ui: ['common', 'model', 'speculative', 'pipeline', 'mesh', 'app', 'server/signal-protocol.ts'],
  headless: ['common', 'model', 'speculative', 'pipeline', 'mesh', 'app'],
  cli: ['common', 'speculative', 'app', 'headless', 'ui', 'gpu', 'model', 'server', 'pipeline/backend.ts'],
  root: ['common', 'model', 'cpu', 'speculative', 'pipeline', 'mesh', 'app', 'server/signal-protocol.ts'],
};

/** Leaves: modules that import nothing of the project, so that anything may depend on them. */
const LEAVES = ['pipeline/contract.ts', 'server/signal-protocol.ts'];

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === 'measured' ? [] : walk(p);
    return /\.(ts|tsx)$/.test(name) && !name.endsWith('.d.ts') ? [p] : [];
  });
}

/** Every relative import of a file (static, dynamic, type-only, re-exports), resolved to a repo path. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
  // `typeof import('...')` in types is not seen by preProcessFile.
  for (const m of text.matchAll(/import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) specs.push(m[1]);
  return specs
    .filter((s) => s.startsWith('.'))
    .map((s) => posix.normalize(relative(repo, resolve(dirname(file), s.split('?')[0])).split('\\').join('/')));
}

const layerOf = (srcPath: string): string => (srcPath.includes('/') ? srcPath.split('/')[0] : 'root');

const files = walk(srcDir).map((f) => relative(repo, f).split('\\').join('/'));
const graph = new Map(files.map((f) => [f, importsOf(join(repo, f))]));

describe('architecture: imports in src/', () => {
  it('finds the source tree', () => {
    expect(files.length).toBeGreaterThan(50);
    for (const f of files) expect(Object.keys(ALLOWED), f).toContain(layerOf(f.slice(4)));
  });

  it('imports nothing outside src/ except WGSL shaders', () => {
    const bad = [...graph].flatMap(([f, deps]) => deps.filter((d) => !d.startsWith('src/') && !/^shaders\/[\w-]+\.wgsl$/.test(d)).map((d) => `${f} -> ${d}`));
    expect(bad).toEqual([]);
  });

  it('imports only downward in the layer order', () => {
    const bad: string[] = [];
    for (const [f, deps] of graph) {
      const from = layerOf(f.slice(4));
      for (const d of deps.filter((x) => x.startsWith('src/'))) {
        const target = d.slice(4);
        const to = layerOf(target);
        if (to === from) continue;
        if (!ALLOWED[from].some((a) => a === to || a === target)) bad.push(`${f} -> ${d}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('keeps the shared leaves free of project imports', () => {
    for (const leaf of LEAVES) expect(graph.get(`src/${leaf}`), leaf).toEqual([]);
  });

  it('has no cycle between files', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('has no cycle between folders', () => {
    const folders = new Map<string, Set<string>>();
    for (const [f, deps] of graph) {
      const from = layerOf(f.slice(4));
      const set = folders.get(from) ?? new Set<string>();
      for (const d of deps) if (d.startsWith('src/') && layerOf(d.slice(4)) !== from) set.add(layerOf(d.slice(4)));
      folders.set(from, set);
    }
    expect(cycles(new Map([...folders].map(([k, v]) => [k, [...v]])))).toEqual([]);
  });

  it('the cycle finder finds a planted cycle', () => {
    expect(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]))).toEqual(['a -> b -> c -> a']);
  });
});

/** Every strongly connected component with more than one node (or a self-loop), as a path. */
function cycles(g: Map<string, string[]>): string[] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (g.get(v) ?? []).includes(v)) out.push([...scc.reverse(), scc[0]].join(' -> '));
    }
  };
  for (const v of [...g.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}
