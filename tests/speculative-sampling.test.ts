import { describe, it, expect } from 'vitest';
import { hash32, positionUniform, selectToken, logSoftmax, topKIndices } from '../src/speculative/sampling.ts';

const greedy = { temperature: 0, topK: 0, topP: 1 };

describe('positionUniform', () => {
  it('is a pure function of (seed, position), in [0,1), exact in f32', () => {
    const a = Array.from({ length: 1000 }, (_, i) => positionUniform(42, i));
    expect(Array.from({ length: 1000 }, (_, i) => positionUniform(42, i))).toEqual(a);
    expect(a.every((u) => u >= 0 && u < 1 && Math.fround(u) === u)).toBe(true);
    expect(positionUniform(43, 5)).not.toBe(positionUniform(42, 5));
    const mean = a.reduce((x, y) => x + y, 0) / a.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
  });

  it('pins the hash so WGSL can be checked against it', () => {
    // golden values: change them only together with the WGSL port
    expect([hash32(0), hash32(1), hash32(0xdeadbeef)]).toEqual([0, 1753845952, 3861431939]);
    expect([positionUniform(0, 0), positionUniform(1, 7), positionUniform(123456789, 1000)].map((u) => u * 16777216)).toEqual([11431808, 15958057, 9418418]);
  });
});

describe('selectToken', () => {
  it('greedy: argmax, ties to the lowest id', () => {
    expect(selectToken([1, 3, 2], greedy, 0.9)).toBe(1);
    expect(selectToken([5, 1, 5, 5], greedy, 0.9)).toBe(0);
    expect(selectToken([0, 2, 2], { temperature: 0, topK: 1, topP: 0.1 }, 0.5)).toBe(1);
  });

  it('inverse CDF over kept tokens in ascending id order', () => {
    const logits = [Math.log(0.1), Math.log(0.2), Math.log(0.3), Math.log(0.4)];
    const s = { temperature: 1, topK: 0, topP: 1 };
    expect(selectToken(logits, s, 0)).toBe(0);
    expect(selectToken(logits, s, 0.099)).toBe(0);
    expect(selectToken(logits, s, 0.101)).toBe(1);
    expect(selectToken(logits, s, 0.299)).toBe(1);
    expect(selectToken(logits, s, 0.31)).toBe(2);
    expect(selectToken(logits, s, 0.61)).toBe(3);
    expect(selectToken(logits, s, 0.999999)).toBe(3);
  });

  it('top-k keeps the k most likely tokens and renormalises', () => {
    const logits = [Math.log(0.1), Math.log(0.2), Math.log(0.3), Math.log(0.4)];
    const s = { temperature: 1, topK: 2, topP: 1 };
    // kept {2: 3/7, 3: 4/7}
    expect(selectToken(logits, s, 0)).toBe(2);
    expect(selectToken(logits, s, 0.42)).toBe(2);
    expect(selectToken(logits, s, 0.43)).toBe(3);
    // ties at the k-th value are all kept
    expect(selectToken([0, 1, 1, 1], { temperature: 1, topK: 2, topP: 1 }, 0.99)).toBe(3);
  });

  it('top-p keeps the smallest most likely set with mass >= p', () => {
    const logits = [Math.log(0.1), Math.log(0.2), Math.log(0.3), Math.log(0.4)];
    // p = 0.65: {3,2} has 0.7 >= 0.65; renormalised {2: 3/7, 3: 4/7}
    expect(selectToken(logits, { temperature: 1, topK: 0, topP: 0.65 }, 0.43)).toBe(3);
    expect(selectToken(logits, { temperature: 1, topK: 0, topP: 0.65 }, 0.42)).toBe(2);
    // p = 0.7 exactly reached by {3,2} as well; p = 0.71 needs {3,2,1}
    expect(selectToken(logits, { temperature: 1, topK: 0, topP: 0.71 }, 0)).toBe(1);
    // p tiny: only the argmax
    expect(selectToken(logits, { temperature: 1, topK: 0, topP: 0.01 }, 0)).toBe(3);
    // top-p applies after top-k: k=3 keeps {1,2,3} mass .9; p=.5 of that is .45 -> {3,2}
    expect(selectToken(logits, { temperature: 1, topK: 3, topP: 0.5 }, 0)).toBe(2);
  });

  it('temperature sharpens or flattens; empirical frequencies match the distribution', () => {
    const logits = [0, 1, 2];
    const counts = [0, 0, 0];
    const N = 20000;
    for (let i = 0; i < N; i++) counts[selectToken(logits, { temperature: 2, topK: 0, topP: 1 }, positionUniform(9, i))]++;
    const w = logits.map((l) => Math.exp(l / 2));
    const z = w.reduce((a, b) => a + b);
    counts.forEach((cnt, i) => expect(Math.abs(cnt / N - w[i] / z)).toBeLessThan(0.015));
  });

  it('helpers: logSoftmax and topKIndices', () => {
    const l = logSoftmax([0, Math.log(3)]);
    expect(Math.exp(l[0])).toBeCloseTo(0.25);
    expect(topKIndices([1, 5, 5, 2], 3)).toEqual([1, 2, 3]);
  });
});

describe('selectToken agrees with the GPU reference sampler (tests/support/cpu-reference.ts refSample)', () => {
  it('on 3000 random logit vectors across temperatures, top-k and top-p', async () => {
    const { refSample } = await import('./support/cpu-reference.ts');
    for (let trial = 0; trial < 3000; trial++) {
      const V = 5 + (trial % 200);
      const logits = new Float32Array(V);
      for (let i = 0; i < V; i++) logits[i] = Math.fround(Math.sin(trial * 7.1 + i * 13.7) * 5);
      const s = { temperature: [0, 0.7, 1, 1.5][trial % 4], topK: [0, 1, 5, 40][(trial >> 2) % 4], topP: [1, 0.9, 0.5][(trial >> 4) % 3] };
      const u = positionUniform(3, trial);
      expect(refSample(logits, 0, V, { ...s, uniform: u }).token, JSON.stringify({ trial, s })).toBe(selectToken(logits, s, u));
    }
  });
});
