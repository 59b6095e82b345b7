// Which tensors a stage needs, where they are (safetensors headers, possibly sharded), and loading
// exactly those bytes: from the IndexedDB cache, else with Range reads of contiguous runs, converted
// to the GPU's weight format and checked (shape, finiteness) on the way.
import type { DenseFormat, HostTensor, ModelSpec, QuantFormat, SourceDtype, StageRole, WeightFormat } from './types.ts';
import type { FileStat, ModelSource } from './source.ts';
import { parseHeader, parseShardIndex, readHeaderLength, SafetensorsError, SAFETENSORS_DTYPE_BYTES, type TensorInfo } from './safetensors.ts';
import { f16IsNonFinite, f16ToF32Table, f32BitsToF16Bits, f32ToF16Bits } from '../common/numerics.ts';
import { chooseWeightCache, weightCacheKey, type TensorCache, type WeightCacheChoice } from './cache.ts';
import { dequantizeMatrix, fromGgmlBlocks, isQuantFormat, quantBytes, quantizeMatrix, quantizeTensor, QUANT_BLOCK } from './quant.ts';
import { ggufModelOf, isGgufBlocks, isGgufTensor, type GgufTensorInfo } from './gguf.ts';
import { GGML_TYPES, ggmlRowBytes, ggmlToF32, unpermuteRows } from './ggml-blocks.ts';
import { BadRequestError, ModelFormatError } from '../common/errors.ts';
import { once } from '../common/once.ts';

/** A tensor is missing, has the wrong shape or dtype, or holds values that cannot be loaded (NaN, Inf, f16 overflow). */
export class WeightError extends ModelFormatError {
  override name = 'WeightError';
}

/** All tensors of the checkpoint that the runtime reads, with their sizes in bytes, across shards. */
export interface TensorIndex {
  tensors: Map<string, TensorInfo>;
  /** Size and etag of every weight file, for range checks and cache keys. */
  files: Map<string, FileStat>;
}

export const SINGLE_FILE = 'model.safetensors';
export const SHARD_INDEX = 'model.safetensors.index.json';

const layerPrefix = (l: number): string => `model.layers.${l}.`;

/** Names and shapes of the tensors of layer `l`. */
export function layerTensorShapes(spec: ModelSpec, l: number): [string, number[]][] {
  const { hiddenSize: h, intermediateSize: i, numHeads, numKvHeads, headDim } = spec;
  const q = numHeads * headDim;
  const kv = numKvHeads * headDim;
  const p = layerPrefix(l);
  const out: [string, number[]][] = [
    [`${p}input_layernorm.weight`, [h]],
    [`${p}self_attn.q_proj.weight`, [q, h]],
    [`${p}self_attn.k_proj.weight`, [kv, h]],
    [`${p}self_attn.v_proj.weight`, [kv, h]],
  ];
  if (spec.attentionBias) {
    out.push([`${p}self_attn.q_proj.bias`, [q]], [`${p}self_attn.k_proj.bias`, [kv]], [`${p}self_attn.v_proj.bias`, [kv]]);
  }
  out.push(
    [`${p}self_attn.o_proj.weight`, [h, q]],
    [`${p}post_attention_layernorm.weight`, [h]],
    [`${p}mlp.gate_proj.weight`, [i, h]],
    [`${p}mlp.up_proj.weight`, [i, h]],
    [`${p}mlp.down_proj.weight`, [h, i]],
  );
  return out;
}

/** The projection matrices of a layer (q/k/v/o, gate/up/down): the tensors `quant` quantizes. */
export function isProjectionWeight(name: string): boolean {
  return /^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$/.test(name);
}

export const EMBED = 'model.embed_tokens.weight';
export const FINAL_NORM = 'model.norm.weight';
export const LM_HEAD = 'lm_head.weight';

/** The tensor the LM head multiplies by: lm_head.weight, or the embedding when tied. */
export function headWeightName(spec: ModelSpec): string {
  return spec.tieWordEmbeddings ? EMBED : LM_HEAD;
}

/** Every tensor the runtime uses, name -> expected shape. */
export function expectedTensors(spec: ModelSpec): Map<string, number[]> {
  const m = new Map<string, number[]>();
  m.set(EMBED, [spec.vocabSize, spec.hiddenSize]);
  for (let l = 0; l < spec.numLayers; l++) for (const [n, s] of layerTensorShapes(spec, l)) m.set(n, s);
  m.set(FINAL_NORM, [spec.hiddenSize]);
  if (!spec.tieWordEmbeddings) m.set(LM_HEAD, [spec.vocabSize, spec.hiddenSize]);
  return m;
}

/** The tensors a stage needs, in load order. */
export function tensorNamesForRole(spec: ModelSpec, role: StageRole): string[] {
  const { start, end } = role.layers;
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end && end <= spec.numLayers)) {
    throw new BadRequestError(`layer range [${start}, ${end}) is not within the model's ${spec.numLayers} layers`);
  }
  const names: string[] = [];
  if (role.embed || (role.head && spec.tieWordEmbeddings)) names.push(EMBED);
  for (let l = start; l < end; l++) for (const [n] of layerTensorShapes(spec, l)) names.push(n);
  if (role.head) {
    names.push(FINAL_NORM);
    if (!spec.tieWordEmbeddings) names.push(LM_HEAD);
  }
  return names;
}

export interface ReadIndexOptions {
  signal?: AbortSignal;
  /** Keep headers in the weight cache too (default true: IndexedDB), so a cached model loads without GETs. */
  cache?: WeightCacheChoice;
}

/**
 * Reads and validates the header of one safetensors file: 8 bytes, then the JSON header only
 * (or the header bytes from the cache, keyed by URL + size + etag).
 */
export async function readSafetensorsHeader(source: ModelSource, file: string, opts: ReadIndexOptions = {}): Promise<{ stat: FileStat; tensors: Map<string, TensorInfo> }> {
  const { signal } = opts;
  const stat = await source.stat(file, signal);
  const url = source.cacheKey(file);
  const cache = url === null ? null : chooseWeightCache(opts.cache, (m) => source.warnings.push(m));
  const key = url ? weightCacheKey(url, stat, '__header__') : '';
  if (cache) {
    const [cached] = await cache.getMany([{ key, bytes: -1 }]);
    if (cached) {
      try {
        return { stat, tensors: parseHeader(file, cached, stat.size).tensors };
      } catch {
        // A bad cached header is a miss; fall through and read it again.
      }
    }
  }
  const first8 = await source.readRange(file, 0, Math.min(8, stat.size), signal);
  const n = readHeaderLength(file, first8, stat.size);
  const header = await source.readRange(file, 8, 8 + n, signal);
  const tensors = parseHeader(file, header, stat.size).tensors;
  if (cache) await cache.putMany([{ key, data: header }]);
  return { stat, tensors };
}

/**
 * Finds every tensor: the GGUF file's index for a GGUF source, else model.safetensors.index.json
 * (sharded) when present, else model.safetensors. Reads only the headers.
 */
export async function readTensorIndex(source: ModelSource, opts: ReadIndexOptions = {}): Promise<TensorIndex> {
  const { signal } = opts;
  const gguf = ggufModelOf(source, signal);
  if (gguf) {
    const g = await gguf;
    return { tensors: new Map<string, TensorInfo>(g.tensors), files: new Map([[g.file, g.stat]]) };
  }
  const indexJson = await source.readOptionalJson(SHARD_INDEX, signal);
  const tensors = new Map<string, TensorInfo>();
  const files = new Map<string, FileStat>();
  if (indexJson === null) {
    const { stat, tensors: t } = await readSafetensorsHeader(source, SINGLE_FILE, opts);
    files.set(SINGLE_FILE, stat);
    for (const [k, v] of t) tensors.set(k, v);
    return { tensors, files };
  }
  const weightMap = parseShardIndex(indexJson, SHARD_INDEX);
  const shards = [...new Set(weightMap.values())];
  const headers = await Promise.all(shards.map((f) => readSafetensorsHeader(source, f, opts)));
  shards.forEach((file, i) => {
    files.set(file, headers[i].stat);
  });
  for (const [name, file] of weightMap) {
    const info = headers[shards.indexOf(file)].tensors.get(name);
    if (!info) throw new SafetensorsError(`${SHARD_INDEX} maps tensor "${name}" to ${file}, but ${file} has no such tensor`);
    tensors.set(name, info);
  }
  return { tensors, files };
}

function isSourceDtype(d: string): d is SourceDtype {
  return d === 'F32' || d === 'F16' || d === 'BF16';
}

/** Checks that every tensor the spec needs exists with the right shape and a supported dtype. */
export function validateTensorIndex(index: TensorIndex, spec: ModelSpec): string[] {
  const warnings: string[] = [];
  for (const [name, shape] of expectedTensors(spec)) {
    const info = index.tensors.get(name);
    if (!info) {
      const hint = name === LM_HEAD ? ' (config says tie_word_embeddings is false)' : '';
      throw new WeightError(`tensor "${name}" is missing from the checkpoint${hint}`);
    }
    if (!isGgufTensor(info) && !isSourceDtype(info.dtype)) {
      throw new WeightError(`${info.file}: tensor "${name}" has dtype ${info.dtype}; supported: F32, F16, BF16 (quantized checkpoints are not)`);
    }
    if (info.shape.length !== shape.length || info.shape.some((d, k) => d !== shape[k])) {
      throw new WeightError(`${info.file}: tensor "${name}" has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}] from config.json`);
    }
  }
  if (spec.tieWordEmbeddings && index.tensors.has(LM_HEAD)) {
    warnings.push(`config ties the embeddings but the checkpoint also has ${LM_HEAD}; using the embedding`);
  }
  return warnings;
}

/**
 * 'auto': f16 when most of the role's bytes are F16, else f32 (F32 and BF16 sources). GGUF blocks
 * count as F16: none holds more than f16's precision, and f16 is what they widen to.
 */
export function resolveWeightFormat(index: TensorIndex, names: string[], format: DenseFormat | 'auto' = 'auto'): DenseFormat {
  if (format !== 'auto') return format;
  let f16 = 0;
  let other = 0;
  for (const n of names) {
    const t = index.tensors.get(n);
    if (!t) continue;
    if (t.dtype === 'F16' || isGgufBlocks(t)) f16 += t.end - t.start;
    else other += t.end - t.start;
  }
  return f16 > other ? 'f16' : 'f32';
}

function view16(bytes: Uint8Array): Uint16Array {
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  return new Uint16Array(bytes.slice().buffer);
}

function view32(bytes: Uint8Array): Uint32Array {
  if (bytes.byteOffset % 4 === 0) return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return new Uint32Array(bytes.slice().buffer);
}

function nonFinite(info: TensorInfo, i: number, what: string): WeightError {
  return new WeightError(`${info.file}: tensor "${info.name}" has ${what} at element ${i} (index [${unflatten(i, info.shape).join(', ')}])`);
}

function unflatten(i: number, shape: number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let k = shape.length - 1; k >= 0; k--) {
    idx[k] = i % shape[k];
    i = Math.floor(i / shape[k]);
  }
  return idx;
}

/**
 * Converts a tensor's raw little-endian bytes into `format`, rejecting NaN/Inf and values that
 * overflow f16. The result owns its buffer (transferable without dragging a larger response along).
 */
export function convertTensor(info: TensorInfo, bytes: Uint8Array, format: DenseFormat): HostTensor {
  const dtype = info.dtype;
  if (!isSourceDtype(dtype)) throw new WeightError(`${info.file}: tensor "${info.name}" has unsupported dtype ${dtype}`);
  const n = bytes.byteLength / SAFETENSORS_DTYPE_BYTES[dtype];
  const shape = [...info.shape];
  if (dtype === 'F32') {
    const src = view32(bytes);
    if (format === 'f32') {
      for (let i = 0; i < n; i++) if ((src[i] & 0x7f800000) === 0x7f800000) throw nonFinite(info, i, (src[i] & 0x7fffff) ? 'NaN' : 'Inf');
      const data = new Float32Array(n);
      new Uint32Array(data.buffer).set(src);
      return { name: info.name, shape, format, data };
    }
    const data = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      const x = src[i];
      if ((x & 0x7f800000) === 0x7f800000) throw nonFinite(info, i, (x & 0x7fffff) ? 'NaN' : 'Inf');
      const h = f32BitsToF16Bits(x);
      if (f16IsNonFinite(h)) throw overflow(info, i, new Float32Array(new Uint32Array([x]).buffer)[0]);
      data[i] = h;
    }
    return { name: info.name, shape, format, data };
  }
  const src = view16(bytes);
  if (dtype === 'F16') {
    for (let i = 0; i < n; i++) if (f16IsNonFinite(src[i])) throw nonFinite(info, i, (src[i] & 0x3ff) ? 'NaN' : 'Inf');
    if (format === 'f16') return { name: info.name, shape, format, data: new Uint16Array(src) };
    const table = f16ToF32Table();
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = table[src[i]];
    return { name: info.name, shape, format, data };
  }
  // BF16: the top half of an f32.
  for (let i = 0; i < n; i++) if ((src[i] & 0x7f80) === 0x7f80) throw nonFinite(info, i, (src[i] & 0x7f) ? 'NaN' : 'Inf');
  if (format === 'f32') {
    const data = new Float32Array(n);
    const bits = new Uint32Array(data.buffer);
    for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
    return { name: info.name, shape, format, data };
  }
  const data = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const h = f32BitsToF16Bits(src[i] << 16);
    if (f16IsNonFinite(h)) throw overflow(info, i, new Float32Array(new Uint32Array([src[i] << 16]).buffer)[0]);
    data[i] = h;
  }
  return { name: info.name, shape, format, data };
}

function overflow(info: TensorInfo, i: number, value: number): WeightError {
  return new WeightError(`${info.file}: tensor "${info.name}" element ${i} = ${value} does not fit in f16 (max 65504); load it with format 'f32'`);
}

export interface LoadStageOptions {
  /** Format of the tensors that are not quantized ('auto': f16 for F16 checkpoints, else f32). */
  format?: DenseFormat | 'auto';
  /**
   * Quantize the projection matrices (q/k/v/o, gate/up/down) to GGML blocks as they load; the
   * embedding, norms and LM head stay in `format`. A matrix whose input size is not a multiple of
   * 32 cannot be cut into blocks and stays in `format` too, with a warning in the source's
   * warnings (llama.cpp's quantizer refuses such a model for Q8_0 / Q4_0). The
   * quantized tensors are what the cache keeps (keyed with the format), so a reload does not
   * quantize again.
   */
  quant?: QuantFormat;
  /** Bytes done / total over the source bytes of the tensors this role needs. */
  onProgress?: (done: number, total: number) => void;
  /** Use the IndexedDB cache (default true; off where there is no IndexedDB), none (false), or the given cache. */
  cache?: WeightCacheChoice;
  signal?: AbortSignal;
  /** The index from loadModel, to skip re-reading headers. */
  index?: TensorIndex;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** Largest merged read of adjacent tensors (default 32 MiB). */
  maxReadBytes?: number;
}

const indexes = new WeakMap<ModelSource, Promise<TensorIndex>>();

/** readTensorIndex, once per source. */
export function tensorIndexFor(source: ModelSource, opts: ReadIndexOptions = {}): Promise<TensorIndex> {
  return once(indexes, source, () => readTensorIndex(source, opts));
}

/** One read: byte-adjacent tensors of one file. */
export interface Run {
  file: string;
  start: number;
  end: number;
  tensors: TensorInfo[];
}

/** Groups tensors into reads of byte-adjacent tensors in the same file (never reading a gap). */
export function planReads(infos: TensorInfo[], maxReadBytes = 32 << 20): Run[] {
  const byFile = new Map<string, TensorInfo[]>();
  for (const t of infos) {
    const list = byFile.get(t.file) ?? [];
    list.push(t);
    byFile.set(t.file, list);
  }
  const runs: Run[] = [];
  for (const [file, list] of byFile) {
    list.sort((a, b) => a.start - b.start);
    let run: Run | null = null;
    for (const t of list) {
      if (run && t.start === run.end && t.end - run.start <= maxReadBytes) {
        run.end = t.end;
        run.tensors.push(t);
      } else {
        run = { file, start: t.start, end: t.end, tensors: [t] };
        runs.push(run);
      }
    }
  }
  return runs;
}

/**
 * Loads exactly the tensors `role` needs (see tensorNamesForRole), as a map name -> HostTensor in
 * one WeightFormat. A tied head stage gets the embedding under its own name (see headWeightName).
 */
export async function loadStageTensors(source: ModelSource, spec: ModelSpec, role: StageRole, opts: LoadStageOptions = {}): Promise<Map<string, HostTensor>> {
  const { signal } = opts;
  const index = opts.index ?? (await tensorIndexFor(source, { signal, cache: opts.cache }));
  const names = tensorNamesForRole(spec, role);
  const expected = expectedTensors(spec);
  const infos = names.map((name) => {
    const info = index.tensors.get(name);
    if (!info) throw new WeightError(`tensor "${name}" is missing from the checkpoint (${source.description})`);
    const shape = expected.get(name) ?? [];
    if (info.shape.length !== shape.length || info.shape.some((d, k) => d !== shape[k])) {
      throw new WeightError(`${info.file}: tensor "${name}" has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}] from config.json`);
    }
    return info;
  });
  const format = resolveWeightFormat(index, names, opts.format);
  const quantOf = quantPlan(infos, opts.quant, format, source.warnings);
  noteWidenedBlocks(infos, quantOf, format, source.warnings);
  const total = infos.reduce((a, t) => a + (t.end - t.start), 0);
  let done = 0;
  const progress = (bytes: number): void => {
    done += bytes;
    opts.onProgress?.(done, total);
  };
  opts.onProgress?.(0, total);
  const out = new Map<string, HostTensor>();
  /** The tensor from its raw bytes: converted to `format`, or quantized to `q`. */
  const decode = (t: TensorInfo, raw: Uint8Array, q: QuantFormat | null): HostTensor => {
    if (isGgufTensor(t)) return ggufTensor(t, raw, format, q);
    return q ? quantizeTensor(convertTensor(t, raw, 'f32').data as Float32Array, t, q) : convertTensor(t, raw, format);
  };
  const load = (t: TensorInfo, raw: Uint8Array): HostTensor => decode(t, raw, quantOf(t));

  // 1. Cache hits: raw bytes, or the quantized tensor (under a key naming its format).
  const cache: TensorCache | null = chooseWeightCache(opts.cache, (m) => source.warnings.push(m));
  const keyOf = (t: TensorInfo): string | null => {
    const url = source.cacheKey(t.file);
    const stat = index.files.get(t.file);
    return url && stat ? weightCacheKey(url, stat, t.name, quantOf(t) ?? undefined) : null;
  };
  const cachedBytes = (t: TensorInfo): number => {
    const q = quantOf(t);
    return q ? quantBytes(t.shape, q) : t.end - t.start;
  };
  let missing = infos;
  if (cache) {
    // In batches of about maxReadBytes, so a big stage never holds all its raw bytes at once.
    const keyed = infos.filter((t) => keyOf(t) !== null);
    const cached = await cache.has(keyed.map((t) => keyOf(t) as string));
    const hits = keyed.filter((_, i) => cached[i]);
    const limit = opts.maxReadBytes ?? 32 << 20;
    for (let i = 0; i < hits.length; ) {
      const batch: TensorInfo[] = [];
      let bytes = 0;
      while (i < hits.length && (batch.length === 0 || bytes + cachedBytes(hits[i]) <= limit)) {
        bytes += cachedBytes(hits[i]);
        batch.push(hits[i++]);
      }
      signal?.throwIfAborted();
      const got = await cache.getMany(batch.map((t) => ({ key: keyOf(t) as string, bytes: cachedBytes(t) })));
      batch.forEach((t, k) => {
        const raw = got[k];
        if (!raw) return;
        const q = quantOf(t);
        out.set(t.name, q ? { name: t.name, shape: [...t.shape], format: q, data: new Uint32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4) } : decode(t, raw, null));
        progress(t.end - t.start);
      });
    }
    missing = infos.filter((t) => !out.has(t.name));
  }

  // 2. Range reads of adjacent tensors, a few at a time.
  const runs = planReads(missing, opts.maxReadBytes);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < runs.length) {
      const run = runs[next++];
      signal?.throwIfAborted();
      const bytes = await source.readRange(run.file, run.start, run.end, signal);
      const toCache: { key: string; data: Uint8Array }[] = [];
      for (const t of run.tensors) {
        const raw = bytes.subarray(t.start - run.start, t.end - run.start);
        const ht = load(t, raw);
        out.set(t.name, ht);
        const key = keyOf(t);
        if (cache && key) toCache.push({ key, data: quantOf(t) ? new Uint8Array(ht.data.buffer, ht.data.byteOffset, ht.data.byteLength) : raw });
      }
      if (cache) await cache.putMany(toCache);
      progress(bytes.byteLength);
    }
  };
  const n = Math.max(1, Math.min(opts.concurrency ?? 4, runs.length));
  await Promise.all(Array.from({ length: n }, worker));
  signal?.throwIfAborted();

  // Same order as tensorNamesForRole.
  return new Map(names.map((name) => [name, out.get(name) as HostTensor]));
}

/** The block format a GGUF projection matrix is stored in, when the GPU runs it as stored (Q8_0, Q4_0). */
function storedQuant(t: TensorInfo): QuantFormat | null {
  if (!isGgufTensor(t) || !isProjectionWeight(t.name)) return null;
  return t.ggml === 'Q8_0' ? 'q8_0' : t.ggml === 'Q4_0' ? 'q4_0' : null;
}

/**
 * Which tensors `quant` applies to: the projection matrices whose input size is a multiple of 32
 * (without `quant`: the GGUF projections stored as Q8_0 / Q4_0, which load as stored).
 * The others among the projections stay `format`, with one warning per kind of matrix: a partial
 * block does not exist in GGML (llama-quantize stops with "Unsupported tensor size encountered"
 * there; its k-quants fall back to another type, down to F16), and a model with such a matrix is
 * still worth quantizing everywhere else.
 */
function quantPlan(infos: TensorInfo[], quant: QuantFormat | undefined, format: DenseFormat, warnings: string[]): (t: TensorInfo) => QuantFormat | null {
  if (quant === undefined) return storedQuant;
  if (!isQuantFormat(quant)) throw new BadRequestError(`quant must be one of q8_0, q4_0, got ${JSON.stringify(quant)}`);
  const requantized = [...new Set(infos.filter(isGgufBlocks).filter((t) => isProjectionWeight(t.name) && storedQuant(t) !== quant).map((t) => t.ggml))];
  if (requantized.length > 0) {
    const w = `${quant.toUpperCase()}: projections stored as ${requantized.join(', ')} are dequantized and quantized again (a second rounding)`;
    if (!warnings.includes(w)) warnings.push(w);
  }
  const kept = new Map<string, { layers: number; cols: number }>();
  const quantized = new Set<string>();
  for (const t of infos) {
    if (!isProjectionWeight(t.name)) continue;
    if (t.shape[1] % QUANT_BLOCK === 0) {
      quantized.add(t.name);
      continue;
    }
    const kind = t.name.replace(/^model\.layers\.\d+\./, '');
    const k = kept.get(kind) ?? { layers: 0, cols: t.shape[1] };
    k.layers++;
    kept.set(kind, k);
  }
  for (const [kind, k] of kept) {
    const w = `${quant.toUpperCase()}: ${kind} (${k.layers} layer${k.layers === 1 ? '' : 's'}) has input size ${k.cols}, not a multiple of ${QUANT_BLOCK}; it stays ${format}`;
    if (!warnings.includes(w)) warnings.push(w);
  }
  return (t) => (quantized.has(t.name) ? quant : null);
}

/** The tensor's values as f32 (f16 bit patterns widened, quantized blocks dequantized). */
export function tensorF32(t: HostTensor): Float32Array {
  if (t.format === 'f32') return t.data as Float32Array;
  if (isQuantFormat(t.format)) return dequantizeMatrix(t.data as Uint32Array, t.shape, t.format, t.name);
  const table = f16ToF32Table();
  return Float32Array.from(t.data as Uint16Array, (h) => table[h]);
}

/**
 * The tensor's data in `format`: f32 values, f16 bit patterns (rounded to nearest even), or
 * quantized blocks (of its f32 values; the same data when it already is in `format`).
 * @throws ModelFormatError when quantizing a tensor whose input size is not a multiple of 32.
 */
export function tensorIn(t: HostTensor, format: WeightFormat): Float32Array | Uint16Array | Uint32Array {
  if (t.format === format) return t.data;
  if (format === 'f32') return tensorF32(t);
  if (format === 'f16') return Uint16Array.from(tensorF32(t), f32ToF16Bits);
  return quantizeMatrix(tensorF32(t), t.shape, format, t.name);
}

/**
 * Says once (warnings and console) which GGUF block types are widened to the dense format on load:
 * those without GPU kernels (Q4_K, Q6_K ...) and quantized tensors outside the projections.
 */
function noteWidenedBlocks(infos: TensorInfo[], quantOf: (t: TensorInfo) => QuantFormat | null, format: DenseFormat, warnings: string[]): void {
  const widened = new Map<string, number>();
  for (const t of infos.filter(isGgufBlocks)) if (quantOf(t) === null) widened.set(t.ggml, (widened.get(t.ggml) ?? 0) + 1);
  if (widened.size === 0) return;
  const list = [...widened].map(([type, n]) => `${n} ${type} tensor${n === 1 ? '' : 's'}`).join(', ');
  const w = `GGUF: ${list} dequantized to ${format} on load (no GPU kernels for these blocks yet: GPU memory and bandwidth are ${format}'s, not the file's)`;
  if (warnings.includes(w)) return;
  warnings.push(w);
  console.warn(w);
}

/**
 * A GGUF tensor from its bytes: rows un-permuted (llama's q/k), then Q8_0 / Q4_0 blocks kept as
 * they are when `quant` is their format (only the scales move, see quant.ts), else decoded to f32
 * (exactly as GGML dequantizes) and converted to `format` or quantized to `quant`, with the same
 * finiteness and f16-range checks as safetensors tensors.
 */
function ggufTensor(t: GgufTensorInfo, raw: Uint8Array, format: DenseFormat, quant: QuantFormat | null): HostTensor {
  const where = `${t.file}: tensor "${t.name}"`;
  const rowBytes = t.shape.length === 1 ? GGML_TYPES[t.ggml].bytes : ggmlRowBytes(t.ggml, t.shape[t.shape.length - 1], where);
  const rows = t.permutedHeads === null ? raw : unpermuteRows(raw, t.permutedHeads, rowBytes, where);
  if (quant !== null && storedQuant(t) === quant) return { name: t.name, shape: [...t.shape], format: quant, data: fromGgmlBlocks(rows, t.shape, quant, where) };
  const count = t.shape.reduce((a, b) => a * b, 1);
  // Blocks become f32 values first, so the dense path below sees an F32 tensor.
  const blocks = isGgufBlocks(t);
  const dense: TensorInfo = blocks ? { ...t, dtype: 'F32' } : t;
  const bytes = blocks ? new Uint8Array(ggmlToF32(rows, t.ggml, count, where).buffer) : rows;
  return quant ? quantizeTensor(convertTensor(dense, bytes, 'f32').data as Float32Array, t, quant) : convertTensor(dense, bytes, format);
}
