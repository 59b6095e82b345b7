// safetensors headers: 8-byte little-endian u64 header length, a JSON header
// (name -> {dtype, shape, data_offsets}, optional __metadata__), then the data. Every number in the
// header is checked against the file size before anyone reads a byte of tensor data.
import { ModelFormatError } from '../common/errors.ts';

/** Every dtype the safetensors format defines, with its size in bytes (sub-byte types excluded). */
export const SAFETENSORS_DTYPE_BYTES = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, F8_E8M0: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8, C64: 8,
} as const;
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_BYTES;

/** The header may not be larger than this (the reference implementation's limit is 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

/** A safetensors file or shard index is malformed or truncated. */
export class SafetensorsError extends ModelFormatError {
  override name = 'SafetensorsError';
}

/** Where one tensor lives: absolute byte range [start, end) within `file`. */
export interface TensorInfo {
  name: string;
  file: string;
  dtype: SafetensorsDtype;
  shape: number[];
  start: number;
  end: number;
}

export interface SafetensorsHeader {
  file: string;
  fileSize: number;
  /** Length of the JSON header (bytes after the 8-byte length prefix). */
  headerLength: number;
  /** Byte offset of the data section (8 + headerLength). */
  dataStart: number;
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads the header length from the first 8 bytes and checks it fits in the file. */
export function readHeaderLength(file: string, first8: Uint8Array, fileSize: number): number {
  if (fileSize < 8 || first8.byteLength < 8) {
    throw new SafetensorsError(`${file}: file is ${fileSize} bytes, too short for a safetensors header (truncated?)`);
  }
  const view = new DataView(first8.buffer, first8.byteOffset, 8);
  const n = view.getBigUint64(0, true);
  if (n === 0n) throw new SafetensorsError(`${file}: header length is 0`);
  if (n > BigInt(fileSize - 8)) {
    throw new SafetensorsError(`${file}: header length ${n} is longer than the file allows (${fileSize - 8} bytes after the prefix; truncated or not a safetensors file?)`);
  }
  if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(`${file}: header length ${n} exceeds ${MAX_HEADER_BYTES} bytes`);
  return Number(n);
}

/** Parses and validates the JSON header of `file` (a file of `fileSize` bytes). */
export function parseHeader(file: string, headerBytes: Uint8Array, fileSize: number): SafetensorsHeader {
  const headerLength = headerBytes.byteLength;
  const dataStart = 8 + headerLength;
  const dataSize = fileSize - dataStart;
  if (dataSize < 0) throw new SafetensorsError(`${file}: header (${headerLength} bytes) is longer than the file (${fileSize} bytes)`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new SafetensorsError(`${file}: header is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(json)) throw new SafetensorsError(`${file}: header is not a JSON object`);

  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isObject(entry)) throw new SafetensorsError(`${file}: __metadata__ is not an object`);
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw new SafetensorsError(`${file}: __metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const where = `${file}: tensor "${name}"`;
    if (!isObject(entry)) throw new SafetensorsError(`${where}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== 'string' || !(dtype in SAFETENSORS_DTYPE_BYTES)) {
      throw new SafetensorsError(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new SafetensorsError(`${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      throw new SafetensorsError(`${where}: data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) throw new SafetensorsError(`${where}: data_offsets [${begin}, ${end}] are reversed`);
    if (end > dataSize) {
      throw new SafetensorsError(`${where}: data_offsets [${begin}, ${end}] run past the end of the data (${dataSize} bytes; file truncated?)`);
    }
    const elements = (shape as number[]).reduce((a, b) => a * b, 1);
    const bytes = elements * SAFETENSORS_DTYPE_BYTES[dtype as SafetensorsDtype];
    if (end - begin !== bytes) {
      throw new SafetensorsError(`${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${bytes}`);
    }
    tensors.set(name, { name, file, dtype: dtype as SafetensorsDtype, shape: shape as number[], start: dataStart + begin, end: dataStart + end });
  }

  // No two tensors may share bytes.
  const sorted = [...tensors.values()].filter((t) => t.end > t.start).sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].start < sorted[i - 1].end) {
      throw new SafetensorsError(`${file}: tensors "${sorted[i - 1].name}" and "${sorted[i].name}" overlap`);
    }
  }
  return { file, fileSize, headerLength, dataStart, metadata, tensors };
}

/** Parses a whole safetensors file held in memory (tests, tools). */
export function parseSafetensors(file: string, bytes: Uint8Array): SafetensorsHeader {
  const n = readHeaderLength(file, bytes.subarray(0, 8), bytes.byteLength);
  return parseHeader(file, bytes.subarray(8, 8 + n), bytes.byteLength);
}

/** model.safetensors.index.json -> tensor name -> shard file name. */
export function parseShardIndex(json: unknown, file = 'model.safetensors.index.json'): Map<string, string> {
  if (!isObject(json) || !isObject(json.weight_map)) throw new SafetensorsError(`${file}: no "weight_map" object`);
  const map = new Map<string, string>();
  for (const [name, shard] of Object.entries(json.weight_map)) {
    if (typeof shard !== 'string' || shard.length === 0 || shard.includes('..') || shard.startsWith('/')) {
      throw new SafetensorsError(`${file}: weight_map["${name}"] is not a plain file name: ${JSON.stringify(shard)}`);
    }
    map.set(name, shard);
  }
  if (map.size === 0) throw new SafetensorsError(`${file}: weight_map is empty`);
  return map;
}

export interface BuildTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Raw little-endian bytes. */
  data: Uint8Array;
}

/** Serialises tensors into a safetensors file (sorted names, header padded to 8 bytes). For tests and tools. */
export function buildSafetensors(tensors: BuildTensor[], metadata?: Record<string, string>): Uint8Array<ArrayBuffer> {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let offset = 0;
  for (const t of sorted) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const raw = new TextEncoder().encode(JSON.stringify(header));
  const headerBytes = new Uint8Array(Math.ceil(raw.byteLength / 8) * 8).fill(0x20); // pad with spaces
  headerBytes.set(raw);
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.byteLength;
  for (const t of sorted) {
    out.set(t.data, pos);
    pos += t.data.byteLength;
  }
  return out;
}
