import { describe, it, expect } from 'vitest';
import { splitLayers } from '../src/pipeline/layers.ts';

describe('splitLayers', () => {
  it('splits evenly with equal weights and marks embed/head', () => {
    const r = splitLayers(8, [1, 1, 1, 1]);
    expect(r.map((x) => [x.layers.start, x.layers.end])).toEqual([[0, 2], [2, 4], [4, 6], [6, 8]]);
    expect(r.map((x) => [x.embed, x.head])).toEqual([[true, false], [false, false], [false, false], [false, true]]);
  });
  it('follows speed weights, contiguous and non-empty', () => {
    const r = splitLayers(8, [3, 1]);
    expect(r.map((x) => x.layers.end - x.layers.start)).toEqual([6, 2]);
    const s = splitLayers(5, [100, 1, 1]);
    expect(s.map((x) => x.layers.end - x.layers.start)).toEqual([3, 1, 1]);
  });
  it('one stage holds everything', () => {
    expect(splitLayers(3, [1])).toEqual([{ layers: { start: 0, end: 3 }, embed: true, head: true }]);
  });
  it('refuses more stages than layers', () => {
    expect(() => splitLayers(2, [1, 1, 1])).toThrow(/cannot split 2 layers into 3 stages/);
  });
});
