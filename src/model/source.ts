// Where a model's files come from: a base URL (same-origin or any CORS host, read with HTTP Range
// requests) or files the user picked. Everything above this reads files through ModelSource.
import { BadRequestError, ModelFormatError, SpecpipeError } from '../common/errors.ts';
import { once } from '../common/once.ts';

export interface FileStat {
  size: number;
  /** ETag or another change marker (last-modified time for local files); null when unknown. */
  etag: string | null;
}

/** Where a model's files come from (urlSource: a base URL; fileSource: files the user picked): everything that reads model files goes through one. */
export interface ModelSource {
  /** Human-readable origin, for messages (a URL, or "local files"). */
  readonly description: string;
  /** Non-fatal problems met while reading (e.g. a server that ignores Range). */
  readonly warnings: string[];
  readText(file: string, signal?: AbortSignal): Promise<string>;
  readJson(file: string, signal?: AbortSignal): Promise<unknown>;
  /** Like readJson, but null when the file does not exist. */
  readOptionalJson(file: string, signal?: AbortSignal): Promise<unknown>;
  /** Size (and a change marker) of a file; throws ModelSourceError when it does not exist. */
  stat(file: string, signal?: AbortSignal): Promise<FileStat>;
  /** Bytes [start, end) of a file. */
  readRange(file: string, start: number, end: number, signal?: AbortSignal): Promise<Uint8Array<ArrayBuffer>>;
  /** Identity of the file for caching (its URL), or null when caching it makes no sense. */
  cacheKey(file: string): string | null;
}

/**
 * A model file could not be read at all: not found, an HTTP error, offline, a host without CORS, a
 * file the user did not pick (code 'model-source'). A file that was read but is malformed or
 * shorter than it claims is a ModelFormatError instead.
 */
export class ModelSourceError extends SpecpipeError {
  override name = 'ModelSourceError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('model-source', message, options);
  }
}

export interface UrlSourceOptions {
  /** Extra request headers (e.g. Authorization for gated Hugging Face repos). */
  headers?: Record<string, string>;
  /** Replaces the global fetch (tests). */
  fetch?: typeof fetch;
}

function describeHttp(res: Response, url: string): string {
  return `${url}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
}

/** Resolves a base URL: relative ones against the page, and always with a trailing slash. */
export function normalizeBaseUrl(baseUrl: string): string {
  const withSlash = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const page = (globalThis as { location?: { href: string } }).location?.href;
  try {
    return new URL(withSlash, page).href;
  } catch {
    throw new ModelSourceError(`model URL ${JSON.stringify(baseUrl)} is not absolute and there is no page to resolve it against`);
  }
}

/**
 * A model at `baseUrl` (e.g. '/models/target/' or 'https://huggingface.co/ORG/NAME/resolve/main/').
 * Weight bytes are read with Range requests; a server that answers 200 with the whole file instead
 * gets the file downloaded once, kept in memory and sliced (with a warning).
 */
export function urlSource(baseUrl: string, options: UrlSourceOptions = {}): ModelSource {
  const base = normalizeBaseUrl(baseUrl);
  const doFetch = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));
  const extraHeaders = options.headers ?? {};
  const warnings: string[] = [];
  const stats = new Map<string, Promise<FileStat>>();
  const wholeFiles = new Map<string, Uint8Array<ArrayBuffer>>();

  const urlOf = (file: string): string => new URL(file, base).href;

  async function get(file: string, headers: Record<string, string>, signal?: AbortSignal, method = 'GET'): Promise<Response> {
    const url = urlOf(file);
    try {
      return await doFetch(url, { method, headers: { ...extraHeaders, ...headers }, signal });
    } catch (e) {
      if (signal?.aborted) throw e;
      throw new ModelSourceError(`${url}: request failed (${(e as Error).message}; offline, or a cross-origin host without CORS?)`);
    }
  }

  function keepWholeFile(file: string, bytes: Uint8Array<ArrayBuffer>): void {
    if (!wholeFiles.has(file)) {
      warnings.push(`${urlOf(file)}: the server ignored the Range header and sent the whole file (${bytes.byteLength} bytes); slicing it in memory`);
      wholeFiles.set(file, bytes);
    }
  }

  async function statUncached(file: string, signal?: AbortSignal): Promise<FileStat> {
    const url = urlOf(file);
    const head = await get(file, {}, signal, 'HEAD');
    if (head.status === 404 || head.status === 410) throw new ModelSourceError(`${url}: not found (HTTP ${head.status})`);
    const etag = head.headers.get('etag');
    const length = head.headers.get('content-length');
    const encoded = head.headers.get('content-encoding');
    if (head.ok && length !== null && /^\d+$/.test(length) && (!encoded || encoded === 'identity')) {
      return { size: Number(length), etag };
    }
    // No usable HEAD: ask for one byte and read the total from Content-Range.
    const res = await get(file, { Range: 'bytes=0-0' }, signal);
    if (res.status === 206) {
      const total = /\/(\d+)\s*$/.exec(res.headers.get('content-range') ?? '');
      await res.arrayBuffer();
      if (total) return { size: Number(total[1]), etag: res.headers.get('etag') ?? etag };
      throw new ModelSourceError(`${url}: cannot tell the file size (no Content-Length on HEAD, Content-Range not exposed to this page)`);
    }
    if (res.ok) {
      const bytes = new Uint8Array(await res.arrayBuffer());
      keepWholeFile(file, bytes);
      return { size: bytes.byteLength, etag: res.headers.get('etag') ?? etag };
    }
    throw new ModelSourceError(describeHttp(res, url));
  }

  return {
    description: base,
    warnings,
    cacheKey: urlOf,

    stat(file, signal) {
      return once(stats, file, () => statUncached(file, signal));
    },

    async readText(file, signal) {
      const res = await get(file, {}, signal);
      if (!res.ok) throw new ModelSourceError(describeHttp(res, urlOf(file)));
      return res.text();
    },

    async readJson(file, signal) {
      const text = await this.readText(file, signal);
      try {
        return JSON.parse(text) as unknown;
      } catch (e) {
        throw new ModelFormatError(`${urlOf(file)}: not valid JSON (${(e as Error).message})`, { cause: e });
      }
    },

    async readOptionalJson(file, signal) {
      const res = await get(file, { Accept: 'application/json' }, signal);
      if (res.status === 404 || res.status === 410) return null;
      if (!res.ok) throw new ModelSourceError(describeHttp(res, urlOf(file)));
      const text = await res.text();
      try {
        return JSON.parse(text) as unknown;
      } catch {
        // Dev servers answer unknown paths with an HTML page: treat as absent.
        if ((res.headers.get('content-type') ?? '').includes('text/html') || text.trimStart().startsWith('<')) return null;
        throw new ModelFormatError(`${urlOf(file)}: not valid JSON`);
      }
    },

    async readRange(file, start, end, signal) {
      if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && end >= start)) {
        throw new BadRequestError(`${urlOf(file)}: bad byte range [${start}, ${end})`);
      }
      if (end === start) return new Uint8Array(0);
      const whole = wholeFiles.get(file);
      if (whole) return sliceChecked(whole, file, start, end);
      const res = await get(file, { Range: `bytes=${start}-${end - 1}` }, signal);
      if (res.status === 206) {
        const bytes = new Uint8Array(await res.arrayBuffer());
        if (bytes.byteLength !== end - start) {
          throw new ModelFormatError(`${urlOf(file)}: asked for bytes [${start}, ${end}) and got ${bytes.byteLength} bytes (file changed or truncated?)`);
        }
        return bytes;
      }
      if (res.status === 200) {
        const bytes = new Uint8Array(await res.arrayBuffer());
        keepWholeFile(file, bytes);
        return sliceChecked(bytes, file, start, end);
      }
      if (res.status === 416) throw new ModelFormatError(`${urlOf(file)}: bytes [${start}, ${end}) are past the end of the file (HTTP 416; truncated?)`);
      throw new ModelSourceError(describeHttp(res, urlOf(file)));
    },
  };

  function sliceChecked(bytes: Uint8Array<ArrayBuffer>, file: string, start: number, end: number): Uint8Array<ArrayBuffer> {
    if (end > bytes.byteLength) {
      throw new ModelFormatError(`${urlOf(file)}: bytes [${start}, ${end}) are past the end of the ${bytes.byteLength}-byte file (truncated?)`);
    }
    return bytes.subarray(start, end);
  }
}

/** Anything with Blob's slice/text/size (File objects from an <input type=file> or a directory picker). */
export interface BlobLike {
  readonly size: number;
  slice(start?: number, end?: number): Blob;
  text(): Promise<string>;
}

/**
 * A model from files the user picked. Files are matched by base name; with a directory picker
 * (webkitRelativePath "dir/sub/config.json") the shallowest file of a name wins.
 */
export function fileSource(files: Iterable<File> | Record<string, BlobLike>): ModelSource {
  const byName = new Map<string, { blob: BlobLike; depth: number; stamp: string | null }>();
  const warnings: string[] = [];
  if (Symbol.iterator in Object(files)) {
    for (const f of files as Iterable<File>) {
      const rel = f.webkitRelativePath || f.name;
      const depth = rel.split('/').length;
      const prev = byName.get(f.name);
      if (prev) warnings.push(`several picked files are named ${f.name}; using the one at the shallowest path`);
      if (!prev || depth < prev.depth) byName.set(f.name, { blob: f, depth, stamp: `${f.size}-${f.lastModified}` });
    }
  } else {
    for (const [name, blob] of Object.entries(files as Record<string, BlobLike>)) byName.set(name, { blob, depth: 0, stamp: null });
  }
  const need = (file: string): BlobLike => {
    const entry = byName.get(file);
    if (!entry) throw new ModelSourceError(`${file}: not among the picked files (${[...byName.keys()].join(', ') || 'none'})`);
    return entry.blob;
  };
  return {
    description: 'local files',
    warnings,
    cacheKey: () => null,
    async stat(file) {
      const blob = need(file);
      return { size: blob.size, etag: byName.get(file)?.stamp ?? null };
    },
    async readText(file) {
      return need(file).text();
    },
    async readJson(file) {
      const text = await need(file).text();
      try {
        return JSON.parse(text) as unknown;
      } catch (e) {
        throw new ModelFormatError(`${file}: not valid JSON (${(e as Error).message})`, { cause: e });
      }
    },
    async readOptionalJson(file) {
      return byName.has(file) ? this.readJson(file) : null;
    },
    async readRange(file, start, end) {
      const blob = need(file);
      if (end > blob.size || start < 0 || end < start) {
        throw new ModelFormatError(`${file}: bytes [${start}, ${end}) are outside the ${blob.size}-byte file (truncated?)`);
      }
      return new Uint8Array(await blob.slice(start, end).arrayBuffer());
    },
  };
}
