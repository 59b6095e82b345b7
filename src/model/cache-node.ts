// The tensor cache on disk, for Node (the stage host, src/cli/stage-host.ts): the same TensorCache
// as the browser's IndexedDB one (cache.ts), one file per entry in a folder. A file is named by the
// SHA-256 of its key and holds the SHA-256 of its bytes, then the bytes: a read checks the size and
// the hash, and an entry that fails either is deleted and missed. Writes go to a temporary file that
// is renamed into place, so a process killed mid-write leaves no half entry. Like the browser cache,
// it is an optimisation only: a failed read is a miss and a failed write is dropped (with a warning).
// Not imported by browser code.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TensorCache } from './cache.ts';

const HASH_BYTES = 32;

const sha256 = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest();

/** The disk cache in `dir` (created on the first write). */
export function diskWeightCache(dir: string, onWarning: (msg: string) => void = () => {}): TensorCache {
  const fileOf = (key: string): string => join(dir, `${createHash('sha256').update(key).digest('hex')}.bin`);
  let tmp = 0;
  const read = async (key: string, bytes: number): Promise<Uint8Array<ArrayBuffer> | null | 'bad'> => {
    let file: Buffer;
    try {
      file = await readFile(fileOf(key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') onWarning(`weight cache read failed (${(e as Error).message}); fetching instead`);
      return null;
    }
    if (file.byteLength < HASH_BYTES || (bytes >= 0 && file.byteLength !== HASH_BYTES + bytes)) return 'bad';
    const data = new Uint8Array(file.byteLength - HASH_BYTES);
    data.set(file.subarray(HASH_BYTES));
    return sha256(data).equals(file.subarray(0, HASH_BYTES)) ? data : 'bad';
  };
  return {
    async has(wanted) {
      return Promise.all(wanted.map((k) => stat(fileOf(k)).then((s) => s.isFile(), () => false)));
    },
    async getMany(entries) {
      const got = await Promise.all(entries.map((e) => read(e.key, e.bytes)));
      const bad = entries.filter((_, i) => got[i] === 'bad');
      if (bad.length > 0) {
        onWarning(`weight cache: ${bad.length} corrupt entr${bad.length === 1 ? 'y' : 'ies'} dropped and refetched`);
        await Promise.all(bad.map((e) => rm(fileOf(e.key), { force: true }).catch(() => undefined)));
      }
      return got.map((g) => (g === 'bad' ? null : g));
    },
    async putMany(entries) {
      if (entries.length === 0) return true;
      try {
        await mkdir(dir, { recursive: true });
        for (const e of entries) {
          const part = `${fileOf(e.key)}.${process.pid}.${tmp++}.part`;
          await writeFile(part, Buffer.concat([sha256(e.data), e.data]));
          await rename(part, fileOf(e.key));
        }
        return true;
      } catch (e) {
        onWarning(`weight cache write failed (${(e as Error).message}); continuing without caching`);
        return false;
      }
    },
  };
}
