// Browser side of e2e/loader.spec.ts: loads fixture models through src/model and reports back
// plain JSON (names, shapes, checksums, progress, warnings, reference-forward agreement).
import { loadModel, loadStageTensors, urlSource, fileSource, clearWeightCache } from '../../src/model/index.ts';
import type { ModelSource } from '../../src/model/source.ts';
import { ReferenceModel } from '../../tests/support/reference-model.ts';
import type { DenseFormat, HostTensor, QuantFormat } from '../../src/model/types.ts';
import { createStore, entries, keys, set } from 'idb-keyval';
import { CACHE_DB, CACHE_STORE } from '../../src/model/cache.ts';

export interface StageRequest {
  url: string;
  layers: [number, number];
  embed: boolean;
  head: boolean;
  format?: DenseFormat | 'auto';
  quant?: QuantFormat;
  cache?: boolean;
  /** Load through File objects (fetched first) instead of the URL. */
  asFiles?: string[];
}

export interface StageReport {
  names: string[];
  shapes: Record<string, number[]>;
  formats: string[];
  /** Sum of |value| per tensor (f16 tensors summed as bit patterns). */
  checksums: Record<string, number>;
  progress: { calls: number; first: [number, number]; last: [number, number]; monotonic: boolean };
  warnings: string[];
  ms: number;
}

function checksum(t: HostTensor): number {
  let s = 0;
  for (let i = 0; i < t.data.length; i++) s += Math.abs(t.data[i]);
  return s;
}

async function sourceFor(req: { url: string; asFiles?: string[] }): Promise<ModelSource> {
  if (!req.asFiles) return urlSource(req.url);
  const files = await Promise.all(
    req.asFiles.map(async (name) => new File([await (await fetch(req.url + name)).blob()], name, { lastModified: 1 })),
  );
  return fileSource(files);
}

export async function clearCache(): Promise<void> {
  await clearWeightCache();
}

/** The keys of the weight cache (file URL | size | etag | tensor [| format]). */
export async function cachedKeys(): Promise<string[]> {
  return (await keys<string>(createStore(CACHE_DB, CACHE_STORE))).map(String);
}

/** Cuts 4 bytes off every cached tensor (not headers); returns how many entries it changed. */
export async function truncateCachedTensors(): Promise<number> {
  const store = createStore(CACHE_DB, CACHE_STORE);
  let n = 0;
  for (const [k, v] of await entries<string, ArrayBuffer>(store)) {
    if (k.endsWith('|__header__')) continue;
    await set(k, v.slice(0, v.byteLength - 4), store);
    n++;
  }
  return n;
}

export async function loadStage(req: StageRequest): Promise<StageReport> {
  const t0 = performance.now();
  const source = await sourceFor(req);
  const model = await loadModel(source, { cache: req.cache });
  const calls: [number, number][] = [];
  const tensors = await loadStageTensors(source, model.spec, { layers: { start: req.layers[0], end: req.layers[1] }, embed: req.embed, head: req.head }, {
    format: req.format,
    quant: req.quant,
    cache: req.cache,
    onProgress: (d, t) => calls.push([d, t]),
  });
  const shapes: Record<string, number[]> = {};
  const checksums: Record<string, number> = {};
  for (const [n, t] of tensors) {
    shapes[n] = t.shape;
    checksums[n] = checksum(t);
  }
  return {
    names: [...tensors.keys()],
    shapes,
    formats: [...new Set([...tensors.values()].map((t) => t.format))],
    checksums,
    progress: {
      calls: calls.length,
      first: calls[0],
      last: calls[calls.length - 1],
      monotonic: calls.every((c, i) => i === 0 || c[0] >= calls[i - 1][0]),
    },
    warnings: model.warnings,
    ms: performance.now() - t0,
  };
}

interface Reference {
  promptIds: number[];
  greedyTokens: number[];
  logits: number[][];
}

/** Loads the whole model from `url` and runs the plain-JS forward against reference.json. */
export async function checkAgainstReference(req: { url: string; steps: number; format?: DenseFormat | 'auto' }): Promise<{ tokens: number[]; want: number[]; maxLogitDiff: number }> {
  const source = urlSource(req.url);
  const model = await loadModel(source);
  const ref = (await (await fetch(`${req.url}reference.json`)).json()) as Reference;
  const tensors = await loadStageTensors(source, model.spec, { layers: { start: 0, end: model.spec.numLayers }, embed: true, head: true }, { format: req.format });
  const m = new ReferenceModel(model.spec, tensors);
  let logits: Float32Array = new Float32Array(0);
  for (const id of ref.promptIds) logits = m.step(id).logits;
  const tokens: number[] = [];
  let maxLogitDiff = 0;
  for (let s = 0; s < req.steps; s++) {
    for (let i = 0; i < logits.length; i++) maxLogitDiff = Math.max(maxLogitDiff, Math.abs(logits[i] - ref.logits[s][i]));
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    tokens.push(best);
    logits = m.step(ref.greedyTokens[s]).logits;
  }
  return { tokens, want: ref.greedyTokens.slice(0, req.steps), maxLogitDiff };
}

/** loadStage while every IndexedDB put throws QuotaExceededError: loading must still succeed. */
export async function loadStageWithFailingCacheWrites(req: StageRequest): Promise<StageReport> {
  const put = IDBObjectStore.prototype.put;
  IDBObjectStore.prototype.put = function (): IDBRequest<IDBValidKey> {
    throw new DOMException('quota exceeded (simulated)', 'QuotaExceededError');
  };
  try {
    return await loadStage(req);
  } finally {
    IDBObjectStore.prototype.put = put;
  }
}
