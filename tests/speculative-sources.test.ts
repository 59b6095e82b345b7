import { describe, it, expect } from 'vitest';
import { NgramSource } from '../src/speculative/ngram-source.ts';
import { DraftModelSource } from '../src/speculative/draft-source.ts';
import { referenceGenerate, toyTargetModel } from './support/toy-lm.ts';
import type { FrontierNode } from '../src/speculative/source.ts';
import { EOS, ToyDraftModel, VOCAB, checkSlots, makeTarget, runSim } from './support/speculative-helpers.ts';

const node = (token: number, position: number, path: number[] = []): FrontierNode => ({
  node: 100 + position, token, position, slot: position,
  path: path.map((t, i) => ({ node: 200 + i, token: t, position: position - path.length + i, slot: 300 + i })),
});

describe('NgramSource', () => {
  it('proposes what followed the longest earlier match, most frequent first', async () => {
    const s = new NgramSource({ maxN: 3 });
    await s.begin({ request: 1, prompt: [1, 2, 3, 9, 1, 2, 3, 4, 7, 2, 3, 4, 1, 2], slots: [] });
    // root = last token (2); context ...1 2: "1 2" was followed by 3 twice
    expect(await s.propose([node(2, 13)], 4)).toEqual([[{ token: 3, logprob: 0 }]]);
    // a node below the root: text + path[1..] + node = ... 1 2 3 -> "1 2 3" followed by 9 and 4
    const [c] = await s.propose([node(3, 14, [2])], 4);
    expect(c.map((x) => x.token)).toEqual([4, 9]);
    expect(c[0].logprob).toBeCloseTo(Math.log(0.5));
    // no match at any n: no guess
    expect(await s.propose([node(40, 14, [2])], 4)).toEqual([[]]);
    // committed tokens extend the index
    await s.commit({ token: 40, position: 14, hit: false, root: node(40, 14), committedSlot: 13, releasedSlots: [], epoch: 1 });
    await s.commit({ token: 41, position: 15, hit: false, root: node(41, 15), committedSlot: 14, releasedSlots: [], epoch: 2 });
    expect((await s.propose([node(40, 16, [41])], 2))[0].map((x) => x.token)).toEqual([41]);
    expect(s.committedText).toHaveLength(16);
  });
});

describe('DraftModelSource', () => {
  const target = makeTarget(31, -50);
  const sampling = { temperature: 0, topK: 0, topP: 1, seed: 1 };
  const prompt = [5, 4, 3, 2, 1, 9, 8];

  it('takes ranked candidates from a draft that ranks them itself (the GPU top-k): same proposals as from its logits', async () => {
    const frontier = [{ node: 7, token: 1, position: prompt.length - 1, slot: prompt.length - 1, path: [] }];
    const proposals: Awaited<ReturnType<DraftModelSource["propose"]>>[] = [];
    for (const ranks of [false, true]) {
      const src = new DraftModelSource(new ToyDraftModel(VOCAB, target, ranks), { temperature: 0.7 });
      await src.begin({ request: 1, prompt, slots: prompt.map((_, i) => i) });
      proposals.push(await src.propose(frontier, 4));
    }
    expect(proposals[1]).toHaveLength(1);
    expect(proposals[1][0].map((c) => c.token)).toEqual(proposals[0][0].map((c) => c.token));
    proposals[1][0].forEach((c, i) => expect(c.logprob).toBeCloseTo(proposals[0][0][i].logprob, 5));
  });

  it('mirrors the tree in the draft KV: a draft equal to the target always hits with W=1 (greedy); lossless in every mode', async () => {
    const ref = referenceGenerate(target, prompt, 120, sampling);
    for (const [mode, width] of [['specpipe', 1], ['specpipe', 3], ['tree', 1]] as const) {
      const draft = new ToyDraftModel(VOCAB, target, width === 3); // W=3: ranked on the "GPU"
      const src = new DraftModelSource(draft);
      const { result, sim } = await runSim({ mode, stages: 4, target, prompt, maxNewTokens: 120, sampling, source: src, width, extra: { treeDepth: 3, treeWidth: width } });
      expect(result.tokens).toEqual(ref.tokens);
      checkSlots(sim, prompt, result);
      if (mode === 'specpipe' && width === 1) {
        expect(result.metrics.hitRate).toBe(1);
        expect(result.metrics.tokensPerStep).toBe(1);
      } else if (mode === 'tree') expect(result.metrics.tokensPerRound!).toBeGreaterThan(3.9);
      // (W > 1: the best W children by cumulative log-prob can crowd out the greedy path, so even a
      // perfect draft misses now and then)
      // the draft committed the same text, except the tail it had no reason to compute yet: it
      // commits text when it next proposes, and proposes a level ahead (up to S + 2 tokens early)
      const text = [...prompt, ...result.tokens];
      const toks = draft.committed.map((s) => draft.kv.get(s)!.token);
      expect(toks).toEqual(text.slice(0, toks.length));
      expect(toks.length, `${mode} W=${width}`).toBeGreaterThan(text.length - 7);
      expect(draft.kv.size).toBe(draft.committed.length); // end() released everything else
    }
  });

  it('a different draft model misses sometimes, stays lossless and keeps its KV consistent', async () => {
    const draftLm = toyTargetModel({ vocabSize: VOCAB, context: 1, seed: 31, eosToken: EOS, eosBias: -50 });
    const sampled = { temperature: 0.7, topK: 0, topP: 0.95, seed: 5 };
    const ref = referenceGenerate(target, prompt, 150, sampled);
    for (const [mode, width] of [['specpipe', 1], ['specpipe', 4], ['tree', 3]] as const) {
      const src = new DraftModelSource(new ToyDraftModel(VOCAB, draftLm), { temperature: 0.7 });
      const { result, sim } = await runSim({ mode, stages: 3, target, prompt, maxNewTokens: 150, sampling: sampled, source: src, width });
      expect(result.tokens).toEqual(ref.tokens);
      expect(result.metrics.misses).toBeGreaterThan(0);
      checkSlots(sim, prompt, result);
    }
  });
});
