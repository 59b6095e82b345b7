import { describe, it, expect } from 'vitest';
import { splitLayers, splitLayersWithin } from '../src/pipeline/layers.ts';

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

describe('splitLayersWithin', () => {
  const sizes = (r: { layers: { start: number; end: number } }[]): number[] => r.map((x) => x.layers.end - x.layers.start);
  it('is splitLayers when nothing is at its limit', () => {
    expect(splitLayersWithin(8, [3, 1], [8, 8])).toEqual(splitLayers(8, [3, 1]));
  });
  it('holds a fast stage with little memory at its limit and shares the rest by weight', () => {
    expect(sizes(splitLayersWithin(8, [6, 1, 1], [2, 8, 8]))).toEqual([2, 3, 3]);
    expect(sizes(splitLayersWithin(12, [10, 1, 3], [3, 100, 100]))).toEqual([3, 3, 6]); // 9 left: 1 + 1 each, 7 by 1:3 (1.75, 5.25)
    const r = splitLayersWithin(8, [6, 1, 1], [2, 8, 8]);
    expect(r.map((x) => [x.embed, x.head])).toEqual([[true, false], [false, false], [false, true]]);
  });
  it('says clearly when the stages cannot hold the model', () => {
    expect(() => splitLayersWithin(8, [1, 1], [3, 4])).toThrow('the stages can hold 7 of the model\'s 8 layers: add a stage tab or one with more memory');
    expect(() => splitLayersWithin(8, [1, 1], [0, 9])).toThrow('stage 1 has no memory for a single layer');
  });
});
