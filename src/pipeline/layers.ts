// Layer assignment: contiguous ranges, proportional to each stage's weight (measured speed).
import type { StageRole } from '../model/types.ts';

/**
 * Splits `numLayers` into `weights.length` contiguous, non-empty ranges whose sizes follow the
 * weights (largest-remainder rounding). Stage 0 embeds, the last stage holds the head.
 */
export function splitLayers(numLayers: number, weights: readonly number[]): StageRole[] {
  const n = weights.length;
  if (n < 1) throw new Error('splitLayers: no stages');
  if (n > numLayers) throw new Error(`cannot split ${numLayers} layers into ${n} stages (one layer at least per stage)`);
  if (weights.some((w) => !(w > 0) || !Number.isFinite(w))) throw new Error('splitLayers: weights must be positive numbers');
  const total = weights.reduce((a, b) => a + b, 0);
  // Every stage gets one layer; the rest are shared out by weight.
  const spare = numLayers - n;
  const exact = weights.map((w) => (spare * w) / total);
  const sizes = exact.map((x) => 1 + Math.floor(x));
  let left = numLayers - sizes.reduce((a, b) => a + b, 0);
  const order = exact.map((x, i) => ({ i, r: x - Math.floor(x) })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of order) {
    if (left === 0) break;
    sizes[i]++;
    left--;
  }
  const roles: StageRole[] = [];
  let start = 0;
  sizes.forEach((size, i) => {
    roles.push({ layers: { start, end: start + size }, embed: i === 0, head: i === n - 1 });
    start += size;
  });
  return roles;
}

export function describeRole(r: StageRole): string {
  return `layers ${r.layers.start}-${r.layers.end - 1}${r.embed ? ' + embedding' : ''}${r.head ? ' + head' : ''}`;
}
