// The CPU reference of the GPU kernels (tests/support/cpu-reference.ts) and the KV slot bookkeeping, in Node.
import { describe, it, expect } from 'vitest';
import { refSample, refArgmax, RefStage, refRope } from './support/cpu-reference.ts';
import { ropeTable } from '../src/common/numerics.ts';
import { KvSlots } from '../src/gpu/kv.ts';
import { tinyLlamaSpec, randomLlamaTensors, getter } from '../src/gpu/synthetic-model.ts';
import type { RowBatch } from '../src/gpu/types.ts';

describe('token choice semantics', () => {
  const logits = Float32Array.from([1, 3, 3, 2, -1]);
  const V = logits.length;
  it('temperature 0 is argmax with ties to the lowest id', () => {
    expect(refArgmax(logits, 0, V)).toBe(1);
    expect(refSample(logits, 0, V, { temperature: 0, topK: 0, topP: 1, uniform: 0.99 }).token).toBe(1);
  });
  it('inverse CDF in ascending id order over the kept tokens', () => {
    // softmax(l): token 0 has the smallest mass after token 4; u = 0 picks the first kept id.
    expect(refSample(logits, 0, V, { temperature: 1, topK: 0, topP: 1, uniform: 0 }).token).toBe(0);
    expect(refSample(logits, 0, V, { temperature: 1, topK: 0, topP: 1, uniform: 0.999999 }).token).toBe(4);
  });
  it('top-k keeps ties at the boundary', () => {
    // k = 1, but ids 1 and 2 tie for the top logit: both kept, u splits them evenly.
    expect(refSample(logits, 0, V, { temperature: 1, topK: 1, topP: 1, uniform: 0.25 }).token).toBe(1);
    expect(refSample(logits, 0, V, { temperature: 1, topK: 1, topP: 1, uniform: 0.75 }).token).toBe(2);
    // k = 3 keeps {1, 2, 3}.
    const seen = new Set<number>();
    for (let u = 0; u < 1; u += 0.01) seen.add(refSample(logits, 0, V, { temperature: 1, topK: 3, topP: 1, uniform: u }).token);
    expect([...seen].sort()).toEqual([1, 2, 3]);
  });
  it('top-p keeps the smallest highest-probability set reaching the mass', () => {
    const l = Float32Array.from([Math.log(0.1), Math.log(0.6), Math.log(0.3)]);
    const kept = (topP: number) => {
      const s = new Set<number>();
      for (let u = 0; u < 1; u += 0.005) s.add(refSample(l, 0, 3, { temperature: 1, topK: 0, topP, uniform: u }).token);
      return [...s].sort();
    };
    expect(kept(0.5)).toEqual([1]);
    expect(kept(0.6)).toEqual([1]);
    expect(kept(0.85)).toEqual([1, 2]);
    expect(kept(0.95)).toEqual([0, 1, 2]);
  });
});

describe('KvSlots', () => {
  it('keeps commit order and forgets released slots', () => {
    const kv = new KvSlots(8);
    kv.commit([3, 1]);
    kv.commit([5]);
    expect(kv.committed).toEqual([3, 1, 5]);
    kv.release([1, 7]);
    expect(kv.committed).toEqual([3, 5]);
    expect(() => kv.commit([3])).toThrow();
    expect(() => kv.commit([8])).toThrow();
    kv.reset();
    expect(kv.committed).toEqual([]);
  });
});

describe('RoPE table', () => {
  it('position 0 is the identity', () => {
    const t = ropeTable(10000, 8, 4);
    const x = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const y = x.slice();
    refRope(y, 0, 1, 8, 0, t);
    expect([...y]).toEqual([...x]);
  });
});

describe('RefStage', () => {
  const spec = tinyLlamaSpec({ numLayers: 2, vocabSize: 97 });
  const tensors = getter(randomLlamaTensors(spec, 9, 'f32'));
  const role = { layers: { start: 0, end: 2 }, embed: true, head: true };
  const seq = (toks: number[], pos0: number, slot0: number): RowBatch => ({
    tokens: Int32Array.from(toks),
    positions: Int32Array.from(toks, (_, i) => pos0 + i),
    slots: Int32Array.from(toks, (_, i) => slot0 + i),
    ancestors: toks.map((_, i) => Int32Array.from({ length: i }, (_, j) => slot0 + j)),
    logitsRows: toks.map((_, i) => i),
  });
  it('a prompt in one batch equals the same prompt fed token by token with commits', () => {
    const a = new RefStage(spec, role, tensors, 32);
    const b = new RefStage(spec, role, tensors, 32);
    const prompt = [1, 5, 9, 13];
    const all = a.forward(seq(prompt, 0, 0)).logits!;
    prompt.forEach((t, i) => {
      const l = b.forward(seq([t], i, i)).logits!;
      b.kv.commit([i]);
      for (let v = 0; v < spec.vocabSize; v++) expect(l[v]).toBeCloseTo(all[i * spec.vocabSize + v], 5);
    });
  });
  it('tree rows with ancestors equal their root-to-leaf paths', () => {
    const st = new RefStage(spec, role, tensors, 32);
    st.forward(seq([1, 2], 0, 0));
    st.kv.commit([0, 1]);
    // A(pos 2) -> B, C (pos 3)
    const tree = st.forward({ tokens: Int32Array.from([7, 8, 9]), positions: Int32Array.from([2, 3, 3]), slots: Int32Array.from([10, 11, 12]), ancestors: [new Int32Array(0), Int32Array.from([10]), Int32Array.from([10])], logitsRows: [0, 1, 2] }).logits!;
    const path = st.forward(seq([7, 9], 2, 20)).logits!;
    const V = spec.vocabSize;
    expect([...path.subarray(V, 2 * V)]).toEqual([...tree.subarray(2 * V, 3 * V)]);
    expect([...path.subarray(0, V)]).toEqual([...tree.subarray(0, V)]);
  });
});
