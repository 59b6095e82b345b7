// The stage host's disk tensor cache (src/model/cache-node.ts): hits, size and hash checks, and a
// whole stage load served from it without reading the weight file again.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { diskWeightCache } from '../src/model/cache-node.ts';
import { loadModel, loadStageTensors, type ModelSource } from '../src/model/index.ts';
import { directorySource } from '../src/model/source-node.ts';

const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'specpipe-cache-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('disk weight cache', () => {
  it('stores, finds and returns entries; misses what it does not hold', async () => {
    const cache = diskWeightCache(join(tempDir(), 'not-yet-there'));
    expect(await cache.has(['a'])).toEqual([false]);
    expect(await cache.putMany([{ key: 'a', data: Uint8Array.from([1, 2, 3]) }, { key: 'b', data: new Uint8Array(0) }])).toBe(true);
    expect(await cache.has(['a', 'b', 'c'])).toEqual([true, true, false]);
    const got = await cache.getMany([{ key: 'a', bytes: 3 }, { key: 'b', bytes: -1 }, { key: 'c', bytes: 1 }]);
    expect(got.map((g) => (g ? [...g] : null))).toEqual([[1, 2, 3], [], null]);
  });

  it('drops an entry of the wrong size or with a wrong hash, with a warning', async () => {
    const dir = tempDir();
    const warnings: string[] = [];
    const cache = diskWeightCache(dir, (m) => warnings.push(m));
    await cache.putMany([{ key: 'x', data: Uint8Array.from([5, 6, 7, 8]) }, { key: 'y', data: Uint8Array.from([9, 9]) }]);
    expect(await cache.getMany([{ key: 'x', bytes: 5 }])).toEqual([null]); // wrong size
    expect(await cache.has(['x'])).toEqual([false]);
    const [file] = readdirSync(dir).filter((f) => readFileSync(join(dir, f)).byteLength === 34);
    const bytes = readFileSync(join(dir, file));
    bytes[33] ^= 1; // flip a bit of the data: the hash no longer matches
    writeFileSync(join(dir, file), bytes);
    expect(await cache.getMany([{ key: 'y', bytes: 2 }])).toEqual([null]);
    expect(await cache.has(['y'])).toEqual([false]);
    expect(warnings).toEqual(['weight cache: 1 corrupt entry dropped and refetched', 'weight cache: 1 corrupt entry dropped and refetched']);
  });

  it('serves a second load of a stage without reading the weight file', async () => {
    const base = directorySource('public/fixtures/tiny-llama');
    const reads: string[] = [];
    // A source with cache keys (directorySource has none), counting weight reads.
    const source: ModelSource = {
      ...base,
      cacheKey: (f) => `test://tiny-llama/${f}`,
      readRange: (f, s, e, signal) => {
        reads.push(`${f} ${s}-${e}`);
        return base.readRange(f, s, e, signal);
      },
    };
    const cache = diskWeightCache(tempDir());
    const model = await loadModel(source, { tokenizer: false, cache });
    const role = { layers: { start: 1, end: 3 }, embed: false, head: true };
    const first = await loadStageTensors(source, model.spec, role, { cache, index: model.tensorIndex });
    const readsBefore = reads.length;
    const again = await loadModel(source, { tokenizer: false, cache }); // headers from the cache
    const second = await loadStageTensors(source, again.spec, role, { cache, index: again.tensorIndex });
    expect(reads.length).toBe(readsBefore);
    expect([...second.keys()].sort()).toEqual([...first.keys()].sort());
    for (const [name, t] of first) expect(second.get(name)?.data, name).toEqual(t.data);
  });
});
