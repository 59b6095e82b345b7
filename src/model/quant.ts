// GGML's Q8_0 and Q4_0 block quantization on the CPU, and the layout the GPU kernels read.
//
// A block is 32 consecutive values of one row of a matrix [out, in] (along the input dimension)
// and one f16 scale d, exactly as GGML's reference quantizers write them (ggml-quants.c):
//   Q8_0 (quantize_row_q8_0_ref): d = amax / 127, q = roundf(x / d) (int8), x = q * d.
//   Q4_0 (quantize_row_q4_0_ref): d = max / -8 (max: the value of largest magnitude, with its sign,
//     the first one on ties), q = min(15, trunc(x / d + 8.5)) (0..15), x = (q - 8) * d.
// Both compute q with id = 1 / d from the f32 d (before its rounding to f16), as GGML does; every
// step below is one f32 operation (Math.fround), so the blocks are bitwise GGML's.
//
// GPU layout (one Uint32Array per matrix, HostTensor.data of formats 'q8_0' / 'q4_0'):
//   [quants of block 0, 1, ..., B-1][scales: B f16, two per u32, padded to a whole u32]
// with block b = row * (in / 32) + j covering values x[row, 32 j .. 32 j + 31]. The quants of a
// block are GGML's bytes in GGML's order: Q8_0 8 words (byte k = q[k] as int8), Q4_0 4 words (byte k =
// q[k] | q[k + 16] << 4). Only the scale moves out of the block (GGML: 2 + 32 and 2 + 16 bytes, not
// u32-aligned), so every word read by the kernels is aligned; the bytes are the same (34 / 18 per
// block: 8.5 / 4.5 bits per weight). toGgmlBlocks / fromGgmlBlocks convert to GGML's byte layout.
import type { HostTensor, QuantFormat } from './types.ts';
import { f16IsNonFinite, f16ToF32Table, f32ToF16Bits } from '../common/numerics.ts';
import { ModelFormatError } from '../common/errors.ts';

/** Values per block (QK8_0 = QK4_0 = 32). */
export const QUANT_BLOCK = 32;

/** The quantized formats a matrix can take on the GPU. */
export const QUANT_FORMATS: readonly QuantFormat[] = ['q8_0', 'q4_0'];

/** True for a quantized weight format ('q8_0', 'q4_0'). */
export function isQuantFormat(f: string): f is QuantFormat {
  return f === 'q8_0' || f === 'q4_0';
}

/** u32 words of quants per block. */
const QUANT_WORDS: Record<QuantFormat, number> = { q8_0: 8, q4_0: 4 };
/** Bytes of one block in GGML's own layout (f16 scale + quants). */
const GGML_BLOCK_BYTES: Record<QuantFormat, number> = { q8_0: 34, q4_0: 18 };

/** Where the parts of a quantized [rows, cols] matrix lie in its Uint32Array (see the top of this file). */
export interface QuantLayout {
  rows: number;
  cols: number;
  /** Blocks in all: rows * cols / 32. */
  blocks: number;
  /** u32 words of quants per block (8 for Q8_0, 4 for Q4_0). */
  blockWords: number;
  /** Word offset of the scales (= blocks * blockWords). */
  scaleOffset: number;
  /** Length of the whole Uint32Array. */
  words: number;
}

/**
 * The layout of a quantized matrix of `shape` [out, in].
 * @throws ModelFormatError when `shape` is not 2-D or its input size is not a multiple of 32.
 */
export function quantLayout(shape: readonly number[], format: QuantFormat, name = 'a tensor'): QuantLayout {
  if (shape.length !== 2) throw new ModelFormatError(`${name}: only matrices can be quantized to ${format.toUpperCase()}, its shape is [${shape.join(', ')}]`);
  const [rows, cols] = shape;
  if (cols % QUANT_BLOCK !== 0 || cols <= 0) {
    throw new ModelFormatError(`${name}: input size ${cols} (shape [${rows}, ${cols}]) is not a multiple of ${QUANT_BLOCK}: ${format.toUpperCase()} needs whole blocks of ${QUANT_BLOCK} values along the input dimension`);
  }
  const blocks = (rows * cols) / QUANT_BLOCK;
  const blockWords = QUANT_WORDS[format];
  const scaleOffset = blocks * blockWords;
  return { rows, cols, blocks, blockWords, scaleOffset, words: scaleOffset + Math.ceil(blocks / 2) };
}

/** Bytes of a quantized matrix of `shape` on the GPU (and in the weight cache). */
export function quantBytes(shape: readonly number[], format: QuantFormat): number {
  return quantLayout(shape, format).words * 4;
}

const f32 = Math.fround;

/** C's roundf: half away from zero (exact for f32 inputs: |x| + 0.5 is exact in f64). */
function roundAway(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

function scaleBits(d: number, name: string, b: number, cols: number): number {
  const h = f32ToF16Bits(d);
  if (f16IsNonFinite(h)) {
    const row = Math.floor((b * QUANT_BLOCK) / cols);
    throw new ModelFormatError(`${name}: block ${b} (row ${row}) has scale ${d}, which does not fit in f16 (values too large to quantize)`);
  }
  return h;
}

/**
 * Quantizes a row-major matrix [rows, cols] of f32 values into GGML blocks, in the GPU layout.
 * @throws ModelFormatError when cols is not a multiple of 32, or a value is not finite or too large
 * for an f16 scale.
 */
export function quantizeMatrix(values: Float32Array, shape: readonly number[], format: QuantFormat, name = 'a tensor'): Uint32Array {
  const L = quantLayout(shape, format, name);
  if (values.length !== L.rows * L.cols) throw new ModelFormatError(`${name}: ${values.length} values for shape [${shape.join(', ')}]`);
  const out = new Uint32Array(L.words);
  const qs = new Uint8Array(out.buffer, 0, L.scaleOffset * 4);
  const scales = new Uint16Array(out.buffer, L.scaleOffset * 4, L.blocks);
  for (let b = 0; b < L.blocks; b++) {
    const x0 = b * QUANT_BLOCK;
    for (let j = 0; j < QUANT_BLOCK; j++) {
      if (!Number.isFinite(values[x0 + j])) throw new ModelFormatError(`${name}: element ${x0 + j} is ${values[x0 + j]}, which cannot be quantized`);
    }
    if (format === 'q8_0') {
      let amax = 0;
      for (let j = 0; j < QUANT_BLOCK; j++) amax = Math.max(amax, Math.abs(values[x0 + j]));
      const d = f32(amax / 127);
      const id = d ? f32(1 / d) : 0;
      scales[b] = scaleBits(d, name, b, L.cols);
      for (let j = 0; j < QUANT_BLOCK; j++) qs[x0 + j] = roundAway(f32(values[x0 + j] * id)) & 0xff;
    } else {
      let amax = 0;
      let max = 0;
      for (let j = 0; j < QUANT_BLOCK; j++) {
        const v = values[x0 + j];
        if (amax < Math.abs(v)) {
          amax = Math.abs(v);
          max = v;
        }
      }
      const d = f32(max / -8);
      const id = d ? f32(1 / d) : 0;
      scales[b] = scaleBits(d, name, b, L.cols);
      const q = (v: number): number => Math.min(15, Math.trunc(f32(f32(v * id) + 8.5)));
      const o = b * 16;
      for (let j = 0; j < 16; j++) qs[o + j] = q(values[x0 + j]) | (q(values[x0 + 16 + j]) << 4);
    }
  }
  return out;
}

/** The values of a quantized matrix (GPU layout) as f32: q * d (Q8_0), (q - 8) * d (Q4_0); exact in f32. */
export function dequantizeMatrix(data: Uint32Array, shape: readonly number[], format: QuantFormat, name = 'a tensor'): Float32Array {
  const L = quantLayout(shape, format, name);
  if (data.length !== L.words) throw new ModelFormatError(`${name}: ${data.length} words of ${format} data, expected ${L.words} for shape [${shape.join(', ')}]`);
  const table = f16ToF32Table();
  const qs = new Uint8Array(data.buffer, data.byteOffset, L.scaleOffset * 4);
  const q8 = new Int8Array(data.buffer, data.byteOffset, L.scaleOffset * 4);
  const scales = new Uint16Array(data.buffer, data.byteOffset + L.scaleOffset * 4, L.blocks);
  const out = new Float32Array(L.rows * L.cols);
  for (let b = 0; b < L.blocks; b++) {
    const d = table[scales[b]];
    const x0 = b * QUANT_BLOCK;
    if (format === 'q8_0') {
      for (let j = 0; j < QUANT_BLOCK; j++) out[x0 + j] = q8[x0 + j] * d;
    } else {
      for (let j = 0; j < 16; j++) {
        const byte = qs[b * 16 + j];
        out[x0 + j] = ((byte & 15) - 8) * d;
        out[x0 + 16 + j] = ((byte >> 4) - 8) * d;
      }
    }
  }
  return out;
}

/** A quantized HostTensor of a dense one (f32 or f16 values). */
export function quantizeTensor(values: Float32Array, t: Pick<HostTensor, 'name' | 'shape'>, format: QuantFormat): HostTensor {
  return { name: t.name, shape: [...t.shape], format, data: quantizeMatrix(values, t.shape, format, t.name) };
}

/**
 * Quantized matrices with the same input size and format stacked along the output dimension (the
 * fused q/k/v matrix): their blocks and scales in order, as if the stacked matrix had been quantized.
 */
export function concatQuantRows(parts: { shape: readonly number[]; data: Uint32Array }[], format: QuantFormat): Uint32Array {
  const cols = parts[0].shape[1];
  const rows = parts.reduce((a, p) => a + p.shape[0], 0);
  const L = quantLayout([rows, cols], format);
  const out = new Uint32Array(L.words);
  const scales = new Uint16Array(out.buffer, L.scaleOffset * 4, L.blocks);
  let q = 0;
  let s = 0;
  for (const p of parts) {
    if (p.shape[1] !== cols) throw new ModelFormatError(`cannot stack quantized matrices of input sizes ${cols} and ${p.shape[1]}`);
    const P = quantLayout(p.shape, format);
    out.set(p.data.subarray(0, P.scaleOffset), q);
    scales.set(new Uint16Array(p.data.buffer, p.data.byteOffset + P.scaleOffset * 4, P.blocks), s);
    q += P.scaleOffset;
    s += P.blocks;
  }
  return out;
}

/** GGML's own bytes of a quantized matrix: per block the f16 scale (little-endian) then the quants (34 / 18 bytes). */
export function toGgmlBlocks(data: Uint32Array, shape: readonly number[], format: QuantFormat): Uint8Array {
  const L = quantLayout(shape, format);
  const qb = L.blockWords * 4;
  const bb = GGML_BLOCK_BYTES[format];
  const qs = new Uint8Array(data.buffer, data.byteOffset, L.scaleOffset * 4);
  const scales = new Uint16Array(data.buffer, data.byteOffset + L.scaleOffset * 4, L.blocks);
  const out = new Uint8Array(L.blocks * bb);
  for (let b = 0; b < L.blocks; b++) {
    out[b * bb] = scales[b] & 0xff;
    out[b * bb + 1] = scales[b] >> 8;
    out.set(qs.subarray(b * qb, (b + 1) * qb), b * bb + 2);
  }
  return out;
}

/** The GPU layout of GGML blocks (as toGgmlBlocks writes them, or as a GGUF file stores a tensor). */
export function fromGgmlBlocks(bytes: Uint8Array, shape: readonly number[], format: QuantFormat, name = 'a tensor'): Uint32Array {
  const L = quantLayout(shape, format, name);
  const qb = L.blockWords * 4;
  const bb = GGML_BLOCK_BYTES[format];
  if (bytes.byteLength !== L.blocks * bb) throw new ModelFormatError(`${name}: ${bytes.byteLength} bytes of ${format.toUpperCase()} blocks, expected ${L.blocks * bb}`);
  const out = new Uint32Array(L.words);
  const qs = new Uint8Array(out.buffer, 0, L.scaleOffset * 4);
  const scales = new Uint16Array(out.buffer, L.scaleOffset * 4, L.blocks);
  for (let b = 0; b < L.blocks; b++) {
    scales[b] = bytes[b * bb] | (bytes[b * bb + 1] << 8);
    qs.set(bytes.subarray(b * bb + 2, (b + 1) * bb), b * qb);
  }
  return out;
}
