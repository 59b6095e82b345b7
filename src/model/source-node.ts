// A ModelSource over a local directory, for Node (tests, CLI tools). Not imported by browser code.
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelSourceError, type ModelSource } from './source.ts';
import { ModelFormatError } from '../common/errors.ts';

export function directorySource(dir: string): ModelSource {
  const path = (file: string): string => {
    if (file.includes('..') || file.startsWith('/')) throw new ModelSourceError(`${file}: not a plain file name`);
    return join(dir, file);
  };
  const missing = (e: unknown): boolean => (e as NodeJS.ErrnoException).code === 'ENOENT';
  return {
    description: dir,
    warnings: [],
    cacheKey: () => null,
    async stat(file) {
      try {
        const s = await stat(path(file));
        return { size: s.size, etag: `${s.size}-${s.mtimeMs}` };
      } catch (e) {
        if (missing(e)) throw new ModelSourceError(`${path(file)}: not found`);
        throw new ModelSourceError(`${path(file)}: ${(e as Error).message}`, { cause: e });
      }
    },
    async readText(file) {
      try {
        return await readFile(path(file), 'utf8');
      } catch (e) {
        if (missing(e)) throw new ModelSourceError(`${path(file)}: not found`);
        throw new ModelSourceError(`${path(file)}: ${(e as Error).message}`, { cause: e });
      }
    },
    async readJson(file) {
      const text = await this.readText(file);
      try {
        return JSON.parse(text) as unknown;
      } catch (e) {
        throw new ModelFormatError(`${path(file)}: not valid JSON (${(e as Error).message})`, { cause: e });
      }
    },
    async readOptionalJson(file) {
      try {
        return JSON.parse(await readFile(path(file), 'utf8')) as unknown;
      } catch (e) {
        if (missing(e)) return null;
        if (e instanceof SyntaxError) throw new ModelFormatError(`${path(file)}: ${e.message}`, { cause: e });
        throw new ModelSourceError(`${path(file)}: ${(e as Error).message}`, { cause: e });
      }
    },
    async readRange(file, start, end) {
      const fh = await open(path(file), 'r');
      try {
        const out = new Uint8Array(end - start);
        let done = 0;
        while (done < out.byteLength) {
          const { bytesRead } = await fh.read(out, done, out.byteLength - done, start + done);
          if (bytesRead === 0) throw new ModelFormatError(`${path(file)}: bytes [${start}, ${end}) are past the end of the file (truncated?)`);
          done += bytesRead;
        }
        return out;
      } finally {
        await fh.close();
      }
    },
  };
}
