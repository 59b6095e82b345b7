// Layer assignment: contiguous ranges, proportional to each stage's weight (measured speed).
import type { StageRole } from '../model/types.ts';

/**
 * Splits `numLayers` into `weights.length` contiguous, non-empty ranges whose sizes follow the
 * weights (largest-remainder rounding). Stage 0 embeds, the last stage holds the head.
 */
export function splitLayers(numLayers: number, weights: readonly number[]): StageRole[] {
  return rolesOf(shareLayers(numLayers, weights));
}

/**
 * splitLayers where stage i can hold at most maxLayers[i] layers (its memory): stages that would
 * get more are held at their limit and the rest is shared out again by weight.
 */
export function splitLayersWithin(numLayers: number, weights: readonly number[], maxLayers: readonly number[]): StageRole[] {
  const tooSmall = maxLayers.findIndex((m) => m < 1);
  if (tooSmall >= 0) throw new Error(`stage ${tooSmall + 1} has no memory for a single layer`);
  const room = maxLayers.reduce((a, b) => a + b, 0);
  if (room < numLayers) throw new Error(`the stages can hold ${room} of the model's ${numLayers} layers: add a stage tab or one with more memory`);
  const sizes = new Array<number>(weights.length).fill(0);
  const open = new Set(weights.keys());
  for (;;) {
    const ids = [...open];
    const left = numLayers - sizes.reduce((a, b) => a + b, 0);
    const share = shareLayers(left, ids.map((i) => weights[i]));
    const over = ids.filter((id, k) => share[k] > maxLayers[id]);
    if (!over.length) {
      ids.forEach((id, k) => (sizes[id] = share[k]));
      return rolesOf(sizes);
    }
    for (const id of over) {
      sizes[id] = maxLayers[id];
      open.delete(id);
    }
  }
}

/** Layers per stage: one each, the rest by weight (largest remainder). */
function shareLayers(numLayers: number, weights: readonly number[]): number[] {
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
  return sizes;
}

function rolesOf(sizes: readonly number[]): StageRole[] {
  const roles: StageRole[] = [];
  let start = 0;
  sizes.forEach((size, i) => {
    roles.push({ layers: { start, end: start + size }, embed: i === 0, head: i === sizes.length - 1 });
    start += size;
  });
  return roles;
}

export function describeRole(r: StageRole): string {
  return `layers ${r.layers.start}-${r.layers.end - 1}${r.embed ? ' + embedding' : ''}${r.head ? ' + head' : ''}`;
}
