// A promise made once per key and shared by every caller; a failure is forgotten, so the next call
// tries again (a network blip must not poison a cache for the page's lifetime).

/** What `once` needs of a Map or WeakMap. */
interface PromiseCache<K, V> {
  get(key: K): Promise<V> | undefined;
  set(key: K, value: Promise<V>): unknown;
  delete(key: K): unknown;
}

/** The promise cached under `key`, made by `make` on first use; dropped from the cache if it rejects. */
export function once<K, V>(cache: PromiseCache<K, V>, key: K, make: () => Promise<V>): Promise<V> {
  let p = cache.get(key);
  if (!p) {
    p = make();
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}
