// Numerics every layer shares, product and tests alike (one copy of each): bit-exact conversions
// between f32, IEEE half (f16) and bfloat16; the RoPE table; a nearest-rank percentile; a seeded
// random generator. Imports nothing.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f32 -> f16 bit pattern, round to nearest even; overflow gives +-Inf, NaN stays NaN (quiet). */
export function f32ToF16Bits(value: number): number {
  f32[0] = value;
  return f32BitsToF16Bits(u32[0]);
}

/** Same as f32ToF16Bits, on the f32's bit pattern. */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0); // Inf / NaN
  const e = exp - 127 + 15; // rebias
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> Inf
  if (e <= 0) {
    // Subnormal half (or zero): shift the mantissa with its implicit 1, round to nearest even.
    if (e < -10) return sign; // too small even for the smallest subnormal after rounding
    const m = mant | 0x800000;
    const shift = 14 - e; // 14..24
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half += 1;
    return sign | half; // a carry into the exponent field yields the smallest normal, correctly
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half += 1; // may carry into Inf: correct
  return sign | half;
}

/** f16 bit pattern -> f32 value (exact). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bf16 bit pattern -> f32 value (exact: bf16 is the top half of an f32). */
export function bf16BitsToF32(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

/** f32 -> bf16 bit pattern, round to nearest even (for tests and tools). */
export function f32ToBf16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff; // quiet NaN
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** True when an f16 bit pattern is Inf or NaN. */
export function f16IsNonFinite(h: number): boolean {
  return (h & 0x7c00) === 0x7c00;
}

let f16Table: Float32Array | null = null;
/** All 65536 f16 values as f32, built on first use (256 KiB). */
export function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

/** cos/sin table [maxPos, headDim / 2] of (cos, sin) pairs, f32 like Hugging Face's rotary embedding. */
export function ropeTable(theta: number, headDim: number, maxPos: number): Float32Array {
  const half = headDim / 2;
  const t = new Float32Array(maxPos * half * 2);
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / theta ** ((2 * i) / headDim);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const a = Math.fround(p * inv[i]);
      t[(p * half + i) * 2] = Math.cos(a);
      t[(p * half + i) * 2 + 1] = Math.sin(a);
    }
  }
  return t;
}

/** Nearest-rank percentile of unsorted values, q in [0, 1]; null when there are none. */
export function percentile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

/** mulberry32: a small seeded generator of floats in [0, 1) (test data, synthetic weights, fuzzing). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
