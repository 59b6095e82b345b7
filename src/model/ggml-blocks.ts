// The GGML tensor types a GGUF file may hold that this runtime reads, and their decoding to f32 on
// the CPU (ggml-quants.c's dequantize_row_*, every step one f32 operation, so the values are
// GGML's bit for bit). Q8_0 / Q4_0 need no decoding on the way to the GPU (quant.ts keeps their
// blocks); Q4_K / Q6_K have no GPU kernels yet and are widened to the stage's dense format.
import { bf16BitsToF32, f16ToF32Table } from '../common/numerics.ts';
import { ModelFormatError } from '../common/errors.ts';

/** GGML type id -> name, values per block and bytes per block, for the types we read. */
export const GGML_TYPES = {
  F32: { id: 0, values: 1, bytes: 4 },
  F16: { id: 1, values: 1, bytes: 2 },
  Q4_0: { id: 2, values: 32, bytes: 18 },
  Q8_0: { id: 8, values: 32, bytes: 34 },
  Q4_K: { id: 12, values: 256, bytes: 144 },
  Q6_K: { id: 14, values: 256, bytes: 210 },
  BF16: { id: 30, values: 1, bytes: 2 },
} as const;
export type GgmlType = keyof typeof GGML_TYPES;

/** The supported type with GGML id `id`, or null. */
export function ggmlTypeOf(id: number): GgmlType | null {
  for (const [name, t] of Object.entries(GGML_TYPES)) if (t.id === id) return name as GgmlType;
  return null;
}

/** Bytes of a row of `cols` values in `type`; a ModelFormatError when the row is not whole blocks. */
export function ggmlRowBytes(type: GgmlType, cols: number, name = 'a tensor'): number {
  const t = GGML_TYPES[type];
  if (cols % t.values !== 0) throw new ModelFormatError(`${name}: a row of ${cols} values is not a whole number of ${type} blocks (${t.values} values each)`);
  return (cols / t.values) * t.bytes;
}

const fr = Math.fround;

/** dequantize_row_q8_0: x = q d. */
function q8_0(src: Uint8Array, out: Float32Array, table: Float32Array): void {
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  for (let b = 0, o = 0; o < out.length; b += 34, o += 32) {
    const d = table[dv.getUint16(b, true)];
    for (let j = 0; j < 32; j++) out[o + j] = fr(dv.getInt8(b + 2 + j) * d);
  }
}

/** dequantize_row_q4_0: x = (q - 8) d, q[j] in the low nibble of byte j, q[j + 16] in the high one. */
function q4_0(src: Uint8Array, out: Float32Array, table: Float32Array): void {
  for (let b = 0, o = 0; o < out.length; b += 18, o += 32) {
    const d = table[src[b] | (src[b + 1] << 8)];
    for (let j = 0; j < 16; j++) {
      const q = src[b + 2 + j];
      out[o + j] = fr(((q & 0x0f) - 8) * d);
      out[o + j + 16] = fr(((q >> 4) - 8) * d);
    }
  }
}

/** get_scale_min_k4: the 6-bit scale and min of sub-block j from the 12 packed bytes at `s`. */
function scaleMinK4(src: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [src[s + j] & 63, src[s + j + 4] & 63];
  return [(src[s + j + 4] & 0x0f) | ((src[s + j - 4] >> 6) << 4), (src[s + j + 4] >> 4) | ((src[s + j] >> 6) << 4)];
}

/** dequantize_row_q4_K: d f16, dmin f16, scales[12], qs[128]; x = d sc q - dmin m per sub-block of 32. */
function q4_k(src: Uint8Array, out: Float32Array, table: Float32Array): void {
  for (let b = 0, o = 0; o < out.length; b += 144, o += 256) {
    const d = table[src[b] | (src[b + 1] << 8)];
    const dmin = table[src[b + 2] | (src[b + 3] << 8)];
    for (let j = 0; j < 4; j++) {
      const [sc1, m1] = scaleMinK4(src, b + 4, 2 * j);
      const [sc2, m2] = scaleMinK4(src, b + 4, 2 * j + 1);
      const d1 = fr(d * sc1), mm1 = fr(dmin * m1);
      const d2 = fr(d * sc2), mm2 = fr(dmin * m2);
      const q = b + 16 + 32 * j;
      for (let l = 0; l < 32; l++) {
        out[o + 64 * j + l] = fr(fr(d1 * (src[q + l] & 0x0f)) - mm1);
        out[o + 64 * j + 32 + l] = fr(fr(d2 * (src[q + l] >> 4)) - mm2);
      }
    }
  }
}

/** dequantize_row_q6_K: ql[128], qh[64], scales int8[16], d f16; x = d sc (q - 32) per sub-block of 16. */
function q6_k(src: Uint8Array, out: Float32Array, table: Float32Array): void {
  for (let b = 0, o = 0; o < out.length; b += 210, o += 256) {
    const d = table[src[b + 208] | (src[b + 209] << 8)];
    for (let h = 0; h < 2; h++) {
      const ql = b + 64 * h, qh = b + 128 + 32 * h, sc = b + 192 + 8 * h, y = o + 128 * h;
      const s = (k: number): number => fr(d * ((src[sc + k] << 24) >> 24));
      for (let l = 0; l < 32; l++) {
        const i = l >> 4;
        const hi = src[qh + l];
        out[y + l] = fr(s(i) * (((src[ql + l] & 0x0f) | ((hi & 3) << 4)) - 32));
        out[y + l + 32] = fr(s(i + 2) * (((src[ql + l + 32] & 0x0f) | (((hi >> 2) & 3) << 4)) - 32));
        out[y + l + 64] = fr(s(i + 4) * (((src[ql + l] >> 4) | (((hi >> 4) & 3) << 4)) - 32));
        out[y + l + 96] = fr(s(i + 6) * (((src[ql + l + 32] >> 4) | (((hi >> 6) & 3) << 4)) - 32));
      }
    }
  }
}

/**
 * The f32 values of `count` elements stored as `type` in `bytes` (row-major, rows of whole blocks).
 * @throws ModelFormatError when the byte count does not match.
 */
export function ggmlToF32(bytes: Uint8Array, type: GgmlType, count: number, name = 'a tensor'): Float32Array {
  const t = GGML_TYPES[type];
  const expected = (count / t.values) * t.bytes;
  if (count % t.values !== 0 || bytes.byteLength !== expected) {
    throw new ModelFormatError(`${name}: ${bytes.byteLength} bytes of ${type} for ${count} values (expected ${Number.isInteger(expected) ? expected : 'whole blocks'})`);
  }
  const out = new Float32Array(count);
  const table = f16ToF32Table();
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (type) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(4 * i, true);
      break;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = table[dv.getUint16(2 * i, true)];
      break;
    case 'BF16':
      for (let i = 0; i < count; i++) out[i] = bf16BitsToF32(dv.getUint16(2 * i, true));
      break;
    case 'Q8_0':
      q8_0(bytes, out, table);
      break;
    case 'Q4_0':
      q4_0(bytes, out, table);
      break;
    case 'Q4_K':
      q4_k(bytes, out, table);
      break;
    case 'Q6_K':
      q6_k(bytes, out, table);
      break;
  }
  return out;
}

/**
 * Undoes llama.cpp's q/k row permutation (convert_hf_to_gguf.py `LlamaModel.permute`: within each
 * of `heads` heads of d rows, GGUF row 2 i + j holds Hugging Face row j d/2 + i), on rows of
 * `rowBytes` bytes in any type (blocks never cross rows). A bias is rows of one value.
 */
export function unpermuteRows(bytes: Uint8Array, heads: number, rowBytes: number, name = 'a tensor'): Uint8Array<ArrayBuffer> {
  const rows = bytes.byteLength / rowBytes;
  const d = rows / heads;
  if (!Number.isInteger(rows) || !Number.isInteger(d) || d % 2 !== 0) {
    throw new ModelFormatError(`${name}: ${rows} rows cannot be ${heads} heads of an even size (q/k row permutation)`);
  }
  const out = new Uint8Array(bytes.byteLength);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < d / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const from = (h * d + 2 * i + j) * rowBytes;
        out.set(bytes.subarray(from, from + rowBytes), (h * d + j * (d / 2) + i) * rowBytes);
      }
    }
  }
  return out;
}
