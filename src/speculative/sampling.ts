// Target-token selection, keyed to absolute positions so that every mode (single tab, PP, tree
// speculation, SpecPipe) draws exactly the same random numbers and therefore emits the same tokens.

/** Sampling settings of a request. temperature 0 = greedy. */
export interface SamplingSettings {
  temperature: number;
  /** Keep the k most likely tokens; 0 disables. */
  topK: number;
  /** Keep the smallest most-likely set with mass >= topP; 1 disables. */
  topP: number;
  /** Seed of the per-position uniform numbers (u32). */
  seed: number;
}

/** Greedy decoding: always the most likely token. */
export const GREEDY: SamplingSettings = { temperature: 0, topK: 0, topP: 1, seed: 0 };

/**
 * lowbias32 (C. Wellons): a u32 -> u32 integer hash. Only u32 xor, shift and wrapping multiply,
 * so WGSL reproduces it bit for bit.
 */
export function hash32(x: number): number {
  x = x >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * The uniform number in [0, 1) used to pick the token AT absolute position `position` (so a row at
 * position n carries positionUniform(seed, n + 1)). Counter-based, no state:
 *   h = hash32((hash32(seed ^ 0x9e3779b9) + position) mod 2^32);  u = (h >> 8) / 2^24
 * 24 bits, so the value is exact in f32 and survives the wire as f32 unchanged.
 */
export function positionUniform(seed: number, position: number): number {
  const h = hash32((hash32((seed ^ 0x9e3779b9) >>> 0) + (position >>> 0)) >>> 0);
  return (h >>> 8) / 16777216;
}

/**
 * CPU reference of the target-token choice (the last stage's WGSL implements the same rules):
 *
 * 1. temperature <= 0 (or not a number > 0): argmax of the logits; ties go to the lowest token id.
 * 2. w_i = exp((l_i - l_max) / T), unnormalised softmax of logits / T.
 * 3. top-k (k > 0 and k < vocab): keep tokens whose w is >= the k-th largest w. Ties at the boundary
 *    are all kept (so the kept set can exceed k when values tie).
 * 4. top-p (p < 1): over the top-k survivors, keep the tokens whose w is >= t, where t is the largest
 *    threshold whose kept mass is >= p * (mass of the top-k survivors). That is the smallest set of
 *    most likely tokens with mass >= p, with ties at the boundary all kept.
 * 5. Renormalise over the kept set and pick by inverse CDF with the uniform u: walk the kept tokens
 *    in ascending token id, accumulate w, return the first id with u * total < cumulative. If
 *    rounding leaves none, return the largest kept id.
 * This reference accumulates in f64; the GPU in f32. They can disagree only when u lands within
 * rounding distance of a CDF boundary or when a threshold falls on a near-tie: tests use models
 * where that does not happen.
 */
export function selectToken(logits: ArrayLike<number>, s: Pick<SamplingSettings, 'temperature' | 'topK' | 'topP'>, uniform: number): number {
  const V = logits.length;
  if (V === 0) throw new Error('selectToken: empty logits');
  let best = 0;
  for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
  if (!(s.temperature > 0)) return best;
  const lmax = logits[best];
  const w = new Float64Array(V);
  for (let i = 0; i < V; i++) w[i] = Math.exp((logits[i] - lmax) / s.temperature);
  const sorted = Array.from(w).sort((a, b) => b - a);
  let thr = 0;
  const k = Math.floor(s.topK);
  if (k > 0 && k < V) thr = sorted[k - 1];
  if (s.topP < 1) {
    let massK = 0;
    for (const x of sorted) if (x >= thr) massK += x;
    const target = s.topP * massK;
    let acc = 0;
    for (let i = 0; i < V; i++) {
      const x = sorted[i];
      if (x < thr) break;
      acc += x;
      // include every token tied with x before testing the mass
      if (i + 1 < V && sorted[i + 1] === x) continue;
      if (acc >= target) {
        thr = Math.max(thr, x);
        break;
      }
    }
  }
  let total = 0;
  for (let i = 0; i < V; i++) if (w[i] >= thr) total += w[i];
  const target = uniform * total;
  let acc = 0;
  let last = best;
  for (let i = 0; i < V; i++) {
    if (w[i] < thr) continue;
    acc += w[i];
    last = i;
    if (target < acc) return i;
  }
  return last;
}

/** Log-softmax of logits / T (T <= 0 treated as 1): what a draft source ranks candidates by. */
export function logSoftmax(logits: ArrayLike<number>, temperature = 1): Float64Array {
  const T = temperature > 0 ? temperature : 1;
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) m = Math.max(m, logits[i] / T);
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i] / T - m);
  const lz = Math.log(z) + m;
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] / T - lz;
  return out;
}

/** Indices of the k largest values, largest first, ties to the lowest index. */
export function topKIndices(values: ArrayLike<number>, k: number): number[] {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  idx.sort((a, b) => values[b] - values[a] || a - b);
  return idx.slice(0, Math.max(0, k));
}
