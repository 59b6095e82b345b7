// WasmStage (the CPU backend) as a whole stage: against the CPU reference stage (f32, f16, Q8_0,
// Q4_0 weights, Qwen2 biases and tied embeddings), tree rows with ancestors, batch independence,
// layer splits, the PyTorch fixtures and the bundled demo-target's recorded greedy tokens; the
// same tolerances as the WebGPU kernel suite (e2e/pages/kernel-suite.ts) and e2e/runtime.spec.ts.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { WasmStage } from '../src/cpu/wasm-stage.ts';
import { getter, randomLlamaTensors, tinyLlamaSpec } from '../src/gpu/synthetic-model.ts';
import { loadModel, loadStageTensors } from '../src/model/index.ts';
import { directorySource } from '../src/model/source-node.ts';
import { seededRandom } from '../src/common/numerics.ts';
import { BadRequestError } from '../src/common/errors.ts';
import type { DenseFormat, HostTensor, ModelSpec, QuantFormat, StageRole } from '../src/model/types.ts';
import type { RowBatch } from '../src/gpu/types.ts';
import { RefStage } from './support/cpu-reference.ts';
import { logSoftmax, topKIndices } from '../src/speculative/sampling.ts';

const fullRole = (spec: ModelSpec): StageRole => ({ layers: { start: 0, end: spec.numLayers }, embed: true, head: true });

function seqBatch(tokens: number[], pos0: number, slot0: number): RowBatch {
  return {
    tokens: Int32Array.from(tokens),
    positions: Int32Array.from(tokens, (_, i) => pos0 + i),
    slots: Int32Array.from(tokens, (_, i) => slot0 + i),
    ancestors: tokens.map((_, i) => Int32Array.from({ length: i }, (_, j) => slot0 + j)),
    logitsRows: tokens.map((_, i) => i),
  };
}

function maxAbs(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function differing(a: Float32Array, b: Float32Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) n++;
  return n;
}

function testModel(format: DenseFormat, seed: number, quant?: QuantFormat, over: Partial<ModelSpec> = {}): { spec: ModelSpec; tensors: (name: string) => HostTensor } {
  const spec = tinyLlamaSpec({ ...(quant ? { intermediateSize: 160 } : {}), ...over });
  return { spec, tensors: getter(randomLlamaTensors(spec, seed, format, quant)) };
}

describe('WasmStage against the CPU reference stage', () => {
  const cases: { name: string; format: DenseFormat; quant?: QuantFormat; over?: Partial<ModelSpec> }[] = [
    { name: 'f32', format: 'f32' },
    { name: 'f16', format: 'f16' },
    { name: 'f16 with Q8_0 projections', format: 'f16', quant: 'q8_0' },
    { name: 'f16 with Q4_0 projections', format: 'f16', quant: 'q4_0' },
    { name: 'Qwen2-style (q/k/v bias, tied embeddings, head 32)', format: 'f16', over: { architecture: 'Qwen2ForCausalLM', attentionBias: true, headDim: 32, numHeads: 2, numKvHeads: 1, hiddenSize: 68, tieWordEmbeddings: true } },
  ];
  for (const c of cases) {
    it(`${c.name}: prompt of 9 rows, then 4 decode steps with commits; logits within 1e-3, tokens equal`, async () => {
      const { spec, tensors } = testModel(c.format, 1234, c.quant, c.over);
      const st = await WasmStage.create(spec, fullRole(spec), tensors, { numSlots: 64 });
      const ref = new RefStage(spec, fullRole(spec), tensors, 64);
      const prompt = [1, 17, 250, 3, 99, 42, 7, 300, 12];
      let batch = seqBatch(prompt, 0, 0);
      let slots = prompt.map((_, i) => i);
      for (let step = 0; step < 5; step++) {
        const got = await st.forward(batch);
        const want = ref.forward(batch);
        expect(maxAbs(got.logits!, want.logits!), `step ${step}`).toBeLessThan(1e-3);
        expect(Array.from(got.tokens!)).toEqual(Array.from(want.tokens!));
        st.kv.commit(slots);
        ref.kv.commit(slots);
        const pos = prompt.length + step;
        batch = seqBatch([got.tokens!.at(-1)!], pos, pos);
        slots = [pos];
      }
      if (c.quant) expect(st.projectionBytes).toBeLessThan(0.6 * (await WasmStage.create(spec, fullRole(spec), testModel(c.format, 1234, undefined, { intermediateSize: 160 }).tensors, { numSlots: 4 })).projectionBytes);
    });
  }

  it('a token tree in one batch equals each root-to-leaf path run as a sequence (bitwise), and the reference (1e-3)', async () => {
    for (const quant of [undefined, 'q4_0'] as const) {
      const { spec, tensors } = testModel('f16', 4321, quant);
      const st = await WasmStage.create(spec, fullRole(spec), tensors, { numSlots: 128 });
      const ref = new RefStage(spec, fullRole(spec), tensors, 128);
      const prefix = [1, 40, 41, 42, 43];
      await st.forward(seqBatch(prefix, 0, 0));
      ref.forward(seqBatch(prefix, 0, 0));
      st.kv.commit([0, 1, 2, 3, 4]);
      ref.kv.commit([0, 1, 2, 3, 4]);
      // A(pos 5) -> B, C (pos 6); B -> D, E (pos 7); C -> F (pos 7).
      const parent = [-1, 0, 0, 1, 1, 2];
      const toks = [100, 101, 102, 103, 104, 105];
      const anc = (i: number): number[] => (parent[i] < 0 ? [] : [...anc(parent[i]), parent[i]]);
      const slotOf = (i: number) => 20 + i;
      const tree: RowBatch = {
        tokens: Int32Array.from(toks),
        positions: Int32Array.from(toks, (_, i) => 5 + anc(i).length),
        slots: Int32Array.from(toks, (_, i) => slotOf(i)),
        ancestors: toks.map((_, i) => Int32Array.from(anc(i).map(slotOf))),
        logitsRows: toks.map((_, i) => i),
      };
      const tg = await st.forward(tree);
      expect(maxAbs(tg.logits!, ref.forward(tree).logits!)).toBeLessThan(1e-3);
      const V = spec.vocabSize;
      let slotBase = 60;
      let rows = 0;
      for (const leaf of [3, 4, 5]) {
        const path = [...anc(leaf), leaf];
        const pg = await st.forward(seqBatch(path.map((i) => toks[i]), 5, slotBase));
        slotBase += path.length;
        path.forEach((node, j) => {
          rows++;
          expect(differing(tg.logits!.subarray(node * V, (node + 1) * V), pg.logits!.subarray(j * V, (j + 1) * V))).toBe(0);
        });
      }
      expect(rows).toBe(9);
    }
  });

  it('a row alone and in a 64-row batch: bitwise equal logits', async () => {
    const { spec, tensors } = testModel('f32', 77);
    const st = await WasmStage.create(spec, fullRole(spec), tensors, { numSlots: 200 });
    await st.forward(seqBatch([5, 6, 7, 8, 9], 0, 0));
    st.kv.commit([0, 1, 2, 3, 4]);
    const rand = seededRandom(8);
    const tokens = Array.from({ length: 64 }, () => Math.floor(rand() * spec.vocabSize));
    const big: RowBatch = { tokens: Int32Array.from(tokens), positions: new Int32Array(64).fill(5), slots: Int32Array.from(tokens, (_, i) => 10 + i), ancestors: tokens.map(() => new Int32Array(0)), logitsRows: [37] };
    const a = await st.forward(big);
    const b = await st.forward({ tokens: Int32Array.from([tokens[37]]), positions: Int32Array.from([5]), slots: Int32Array.from([150]), ancestors: [new Int32Array(0)], logitsRows: [0] });
    expect(differing(a.logits!, b.logits!)).toBe(0);
  });

  it('layers [0,2) + [2,4) as two stages equal one stage [0,4) bitwise; hidden states cross as f32', async () => {
    const { spec, tensors } = testModel('f16', 555);
    const whole = await WasmStage.create(spec, fullRole(spec), tensors, { numSlots: 64 });
    const s1 = await WasmStage.create(spec, { layers: { start: 0, end: 2 }, embed: true, head: false }, tensors, { numSlots: 64 });
    const s2 = await WasmStage.create(spec, { layers: { start: 2, end: 4 }, embed: false, head: true }, tensors, { numSlots: 64 });
    const steps = [seqBatch([1, 2, 3, 4, 5, 6], 0, 0), seqBatch([77], 6, 6), seqBatch([78, 79], 7, 7)];
    const commits = [[0, 1, 2, 3, 4, 5], [6], [7, 8]];
    for (let i = 0; i < steps.length; i++) {
      const w = await whole.forward(steps[i]);
      const h = await s1.forward(steps[i]);
      expect(h.hidden!.length).toBe(steps[i].positions.length * spec.hiddenSize);
      const { tokens: _t, ...rest } = steps[i];
      const o = await s2.forward({ ...rest, hidden: h.hidden });
      expect(differing(w.logits!, o.logits!)).toBe(0);
      for (const st of [whole, s1, s2]) st.kv.commit(commits[i]);
    }
  });

  it('candidates (the draft model\'s k best tokens and log-probabilities) as logSoftmax / topKIndices of the reference logits', async () => {
    const { spec, tensors } = testModel('f32', 99);
    const st = await WasmStage.create(spec, fullRole(spec), tensors, { numSlots: 32 });
    const ref = new RefStage(spec, fullRole(spec), tensors, 32);
    const batch = seqBatch([3, 8, 200, 9], 0, 0);
    const want = ref.forward(batch).allLogits!;
    const V = spec.vocabSize;
    for (const [k, temperature, rows] of [[5, 1, [0, 3]], [16, 0.7, undefined], [1, 0, [2]]] as const) {
      const out = await st.forward({ ...batch, logitsRows: rows ? [...rows] : undefined, candidates: { k, temperature } });
      expect(out.tokens).toBeUndefined();
      expect(out.logits).toBeUndefined();
      const rowList = rows ?? [0, 1, 2, 3];
      rowList.forEach((r, i) => {
        const l = want.subarray(r * V, (r + 1) * V);
        const top = topKIndices(l, k);
        const lp = logSoftmax(l, temperature);
        expect(Array.from(out.candidates!.ids.subarray(i * k, (i + 1) * k))).toEqual(top);
        for (let n = 0; n < k; n++) expect(Math.abs(out.candidates!.logprobs[i * k + n] - lp[top[n]])).toBeLessThan(1e-3);
      });
    }
    const sampled = await st.forward({ ...batch, sampling: Array.from(batch.positions, () => ({ temperature: 0, topK: 0, topP: 1, uniform: 0 })), candidates: { k: 2, temperature: 1 } });
    expect(sampled.tokens).toHaveLength(4);
    await expect(st.forward({ ...batch, candidates: { k: 17, temperature: 1 } })).rejects.toThrow(/candidates.k must be 1..16/);
  });

  it('rejects bad batches with BadRequestError, and any forward after destroy', async () => {
    const { spec, tensors } = testModel('f32', 1);
    const st = await WasmStage.create(spec, fullRole(spec), tensors, { numSlots: 8, maxRows: 4 });
    const ok = seqBatch([1, 2], 0, 0);
    await expect(st.forward({ ...ok, tokens: Int32Array.from([1, spec.vocabSize]) })).rejects.toThrow(BadRequestError);
    await expect(st.forward({ ...ok, slots: Int32Array.from([0, 8]) })).rejects.toThrow(/slot 8 out of range/);
    await expect(st.forward({ ...ok, positions: Int32Array.from([0, 1e6]) })).rejects.toThrow(/position/);
    await expect(st.forward(seqBatch([1, 2, 3, 4, 5], 0, 0))).rejects.toThrow(/5 rows/);
    await expect(st.forward({ ...ok, logitsRows: [2] })).rejects.toThrow(/logits row 2/);
    st.destroy();
    await expect(st.forward(ok)).rejects.toThrow(/destroyed/);
  });
});

interface Reference {
  promptIds: number[];
  greedyTokens: number[];
  logits: number[][];
}

describe('WasmStage on the PyTorch fixtures', () => {
  for (const name of ['tiny-llama', 'tiny-qwen2', 'tiny-bf16']) {
    it(`${name}: 32 greedy steps, logits within 1e-3 of the logit range, tokens equal`, async () => {
      const dir = `public/fixtures/${name}`;
      const source = directorySource(dir);
      const { spec } = await loadModel(source);
      const role = fullRole(spec);
      const tensors = await loadStageTensors(source, spec, role);
      const st = await WasmStage.create(spec, role, getter(tensors), { numSlots: 64 });
      const ref = JSON.parse(readFileSync(`${dir}/reference.json`, 'utf8')) as Reference;
      const n = ref.promptIds.length;
      let out = await st.forward({ ...seqBatch(ref.promptIds, 0, 0), logitsRows: [n - 1] });
      st.kv.commit(ref.promptIds.map((_, i) => i));
      let worst = 0;
      for (let step = 0; step < ref.greedyTokens.length; step++) {
        const want = ref.logits[step];
        const range = Math.max(...want) - Math.min(...want);
        worst = Math.max(worst, maxAbs(out.logits!, Float32Array.from(want)) / range);
        expect(out.tokens!.at(-1), `step ${step}`).toBe(ref.greedyTokens[step]);
        const pos = n + step;
        out = await st.forward(seqBatch([ref.greedyTokens[step]], pos, pos));
        st.kv.commit([pos]);
      }
      console.log(`${name} on the CPU backend: max |logit diff| / logit range over 32 steps = ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(1e-3);
    });
  }

  it('bundled demo-target (F16): the greedy continuations PyTorch recorded at training time', async () => {
    const dir = 'public/models/demo-target';
    const source = directorySource(dir);
    const { spec } = await loadModel(source);
    const role = fullRole(spec);
    const st = await WasmStage.create(spec, role, getter(await loadStageTensors(source, spec, role)), { numSlots: 128 });
    const ref = JSON.parse(readFileSync(`${dir}/reference.json`, 'utf8')) as { cases: { promptIds: number[]; greedyTokens: number[] }[] };
    for (const c of ref.cases) {
      st.kv.reset();
      const got: number[] = [];
      let out = await st.forward(seqBatch(c.promptIds, 0, 0));
      st.kv.commit(c.promptIds.map((_, i) => i));
      for (let step = 0; step < c.greedyTokens.length; step++) {
        const tok = out.tokens!.at(-1)!;
        got.push(tok);
        const pos = c.promptIds.length + step;
        out = await st.forward(seqBatch([tok], pos, pos));
        st.kv.commit([pos]);
      }
      expect(got).toEqual(c.greedyTokens);
    }
  });
});
