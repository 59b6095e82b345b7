// Raw tensor bytes cached in IndexedDB (idb-keyval), keyed by file URL + size/etag + tensor name,
// so a changed file never serves stale bytes; a tensor quantized on load is cached quantized, under
// the same key plus its format ('|q8_0', '|q4_0'). The cache is an optimisation only: a read that fails
// or returns the wrong length is a miss, and a write that fails (quota, private mode) is dropped.
import { createStore, delMany, getMany, setMany, clear, keys, type UseStore } from 'idb-keyval';
import type { FileStat } from './source.ts';

export interface TensorCache {
  /** Which keys have an entry (without reading the values). */
  has(keys: string[]): Promise<boolean[]>;
  /**
   * Cached bytes per key, or null for a miss. Entries of the wrong length are deleted and missed
   * (bytes -1: any length).
   */
  getMany(entries: { key: string; bytes: number }[]): Promise<(Uint8Array<ArrayBuffer> | null)[]>;
  /** Stores entries; never throws (returns false when the write failed). */
  putMany(entries: { key: string; data: Uint8Array }[]): Promise<boolean>;
}

export const CACHE_DB = 'specpipe-weights';
export const CACHE_STORE = 'tensors';

/** The cache key of a tensor's raw bytes, or (with `variant`, e.g. 'q4_0') of its bytes in that form. */
export function weightCacheKey(fileUrl: string, stat: FileStat, tensor: string, variant?: string): string {
  return `${fileUrl}|${stat.size}|${stat.etag ?? ''}|${tensor}${variant ? `|${variant}` : ''}`;
}

let store: UseStore | null = null;

/** True where IndexedDB exists (browsers, workers); false in Node. */
export function cacheAvailable(): boolean {
  return typeof indexedDB !== 'undefined';
}

/** The IndexedDB tensor cache, or null where there is no IndexedDB (Node). */
export function openWeightCache(onWarning: (msg: string) => void = () => {}): TensorCache | null {
  if (!cacheAvailable()) return null;
  store ??= createStore(CACHE_DB, CACHE_STORE);
  const s = store;
  return {
    async has(wanted) {
      try {
        const present = new Set(await keys<string>(s));
        return wanted.map((k) => present.has(k));
      } catch (e) {
        onWarning(`weight cache read failed (${(e as Error).message}); fetching instead`);
        return wanted.map(() => false);
      }
    },
    async getMany(entries) {
      let values: unknown[];
      try {
        values = await getMany(entries.map((e) => e.key), s);
      } catch (e) {
        onWarning(`weight cache read failed (${(e as Error).message}); fetching instead`);
        return entries.map(() => null);
      }
      const bad: string[] = [];
      const out = values.map((v, i) => {
        if (v === undefined) return null;
        const bytes = v instanceof ArrayBuffer ? new Uint8Array(v) : null;
        if (bytes === null || (entries[i].bytes >= 0 && bytes.byteLength !== entries[i].bytes)) {
          bad.push(entries[i].key);
          return null;
        }
        return bytes;
      });
      if (bad.length > 0) {
        onWarning(`weight cache: ${bad.length} corrupt entr${bad.length === 1 ? 'y' : 'ies'} dropped and refetched`);
        await delMany(bad, s).catch(() => undefined);
      }
      return out;
    },
    async putMany(entries) {
      if (entries.length === 0) return true;
      try {
        // Store exact-size ArrayBuffers (a view's buffer may be a larger shared response buffer).
        await setMany(entries.map((e) => [e.key, e.data.slice().buffer] as [string, ArrayBuffer]), s);
        return true;
      } catch (e) {
        onWarning(`weight cache write failed (${(e as Error).message}); continuing without caching`);
        return false;
      }
    },
  };
}

/**
 * Which tensor cache a load uses: true (the default) the IndexedDB one where there is IndexedDB,
 * false none, or a given one (in Node: src/model/cache-node.ts's disk cache).
 */
export type WeightCacheChoice = boolean | TensorCache;

/** The cache a `WeightCacheChoice` stands for, or null for none. */
export function chooseWeightCache(choice: WeightCacheChoice | undefined, onWarning: (msg: string) => void): TensorCache | null {
  if (choice === false) return null;
  return typeof choice === 'object' ? choice : openWeightCache(onWarning);
}

/** Deletes every cached tensor. */
export async function clearWeightCache(): Promise<void> {
  if (!cacheAvailable()) return;
  store ??= createStore(CACHE_DB, CACHE_STORE);
  await clear(store);
}
