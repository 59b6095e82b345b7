import { describe, it, expect } from 'vitest';
import { referenceGenerate, toyTargetModel } from './support/toy-lm.ts';
import { generate, reservedSlots, type Mode } from '../src/speculative/scheduler.ts';
import { specpipeBound } from '../src/speculative/metrics.ts';
import { percentile } from '../src/common/numerics.ts';
import { SimPipeline } from './support/sim-pipeline.ts';
import { NgramSource } from '../src/speculative/ngram-source.ts';
import type { SamplingSettings } from '../src/speculative/sampling.ts';
import type { SpeculativeSource } from '../src/speculative/source.ts';
import { EOS, VOCAB, checkSlots, makeTarget, oracle, randomPrompt, rng, runSim } from './support/speculative-helpers.ts';

const GREEDY: SamplingSettings = { temperature: 0, topK: 0, topP: 1, seed: 11 };
const SAMPLED: SamplingSettings = { temperature: 0.8, topK: 20, topP: 0.9, seed: 12345 };

describe('scheduler: every mode emits the single-stage reference tokens', () => {
  const target = makeTarget(3);
  const r = rng(99);
  for (const sampling of [GREEDY, SAMPLED]) {
    for (const S of [1, 2, 4, 8]) {
      it(`S=${S} ${sampling.temperature ? 'sampled' : 'greedy'}: single/pp/tree and specpipe W=1,2,4 at hit rates 0.3 / 0.85`, async () => {
        const prompt = randomPrompt(r, 3 + Math.floor(r() * 10));
        const ref = referenceGenerate(target, prompt, 80, sampling, [EOS]);
        const runs: { mode: Mode; width?: number; p?: number }[] = [
          { mode: 'pp' },
          { mode: 'tree', p: 0.6 },
          ...[1, 2, 4].flatMap((width) => [0.3, 0.85].map((p) => ({ mode: 'specpipe' as Mode, width, p }))),
        ];
        if (S === 1) runs.push({ mode: 'single' });
        for (const run of runs) {
          const src = run.p === undefined ? null : oracle(target, sampling, run.p, 5, 0.5);
          const { result, sim } = await runSim({ mode: run.mode, stages: S, target, prompt, maxNewTokens: 80, sampling, source: src, width: run.width });
          const what = `${run.mode} W=${run.width} p=${run.p}`;
          expect(result.tokens, what).toEqual(ref.tokens);
          expect(result.stopReason, what).toBe(ref.stop);
          checkSlots(sim, prompt, result);
        }
      });
    }
  }

  it('EOS stops every mode at the same place', async () => {
    const t = makeTarget(5, 1.5); // EOS likely
    const prompt = [7, 8, 9];
    const ref = referenceGenerate(t, prompt, 500, SAMPLED, [EOS]);
    expect(ref.stop).toBe('eos');
    for (const S of [1, 3, 4]) {
      for (const [mode, width] of [['pp', 1], ['specpipe', 1], ['specpipe', 4], ['tree', 2]] as const) {
        const { result, sim } = await runSim({ mode, stages: S, target: t, prompt, maxNewTokens: 500, sampling: SAMPLED, source: oracle(t, SAMPLED, 0.8), width });
        expect(result.stopReason).toBe('eos');
        expect(result.tokens).toEqual(ref.tokens);
        checkSlots(sim, prompt, result);
      }
    }
  });

  it('max length: stops after maxNewTokens, and earlier when the KV slots run out', async () => {
    const t = makeTarget(6, -50);
    const prompt = [1, 2, 3, 4];
    for (const mode of ['pp', 'specpipe', 'tree'] as const) {
      const { result, sim } = await runSim({ mode, stages: 4, target: t, prompt, maxNewTokens: 17, sampling: GREEDY, source: oracle(t, GREEDY, 0.9), width: 2 });
      expect(result.tokens).toHaveLength(17);
      expect(result.stopReason).toBe('length');
      checkSlots(sim, prompt, result);
      // 40 slots, specpipe reserves S*W+2 = 10, tree D*K+2 = 10, pp 2: room for 30 / 38 tokens of text
      const small = await runSim({ mode, stages: 4, target: t, prompt, maxNewTokens: 100, sampling: GREEDY, source: oracle(t, GREEDY, 0.9), width: 2, numSlots: 40 });
      expect(small.result.stopReason).toBe('length');
      expect(small.result.tokens).toEqual(referenceGenerate(t, prompt, mode === 'pp' ? 34 : 26, GREEDY).tokens);
      checkSlots(small.sim, prompt, small.result);
    }
    await expect(runSim({ mode: 'pp', stages: 2, target: t, prompt: Array(40).fill(3), maxNewTokens: 5, sampling: GREEDY, numSlots: 40 })).rejects.toThrow(/does not fit/);
    const none = await runSim({ mode: 'specpipe', stages: 2, target: t, prompt, maxNewTokens: 0, sampling: GREEDY });
    expect(none.result.tokens).toEqual([]);
  });

  it('long prompts are prefilled in chunks of 64 rows', async () => {
    const t = makeTarget(8);
    const prompt = randomPrompt(rng(4), 150);
    const ref = referenceGenerate(t, prompt, 30, SAMPLED, [EOS]);
    for (const mode of ['pp', 'specpipe', 'tree'] as const) {
      const { result, sim } = await runSim({ mode, stages: 3, target: t, prompt, maxNewTokens: 30, sampling: SAMPLED, source: oracle(t, SAMPLED, 0.7), width: 2 });
      expect(result.tokens).toEqual(ref.tokens);
      expect(result.metrics.rowsSent).toBeGreaterThanOrEqual(150);
      checkSlots(sim, prompt, result);
    }
    // 150 rows = levels of 64, 64, 22 (the first level has 64 rows)
    const sim = new SimPipeline({ numStages: 2, numSlots: 300, target: t });
    const sizes: number[] = [];
    const send = sim.send.bind(sim);
    sim.send = (l) => (sizes.push(l.rows.length), send(l));
    await generate(sim, { mode: 'pp', prompt, maxNewTokens: 1 });
    expect(sizes.slice(0, 3)).toEqual([64, 64, 22]);
  });

  it('stale rows after misses are dropped or ignored; credit > 1 lets levels queue at stage 1', async () => {
    const t = makeTarget(9, -50);
    const prompt = [4, 5, 6];
    const ref = referenceGenerate(t, prompt, 150, SAMPLED);
    const a = await runSim({ mode: 'specpipe', stages: 6, target: t, prompt, maxNewTokens: 150, sampling: SAMPLED, source: oracle(t, SAMPLED, 0.5), width: 2 });
    expect(a.result.tokens).toEqual(ref.tokens);
    expect(a.result.metrics.misses).toBeGreaterThan(10);
    expect(a.result.metrics.staleResults).toBeGreaterThan(0); // rows of dead nodes reached the last stage
    checkSlots(a.sim, prompt, a.result);
    // with a deeper stage-1 queue, verdicts queue behind doomed rows and the stage drops them
    const b = await runSim({ mode: 'specpipe', stages: 6, target: t, prompt, maxNewTokens: 150, sampling: SAMPLED, source: oracle(t, SAMPLED, 0.5), width: 2, stage1Queue: 3 });
    expect(b.result.tokens).toEqual(ref.tokens);
    expect(b.sim.stats.rowsDropped).toBeGreaterThan(0);
    checkSlots(b.sim, prompt, b.result);
  });

  it('streams tokens in order and stops on abort with everything released', async () => {
    const t = makeTarget(10, -50);
    const prompt = [9, 9, 9];
    const ref = referenceGenerate(t, prompt, 200, GREEDY);
    for (const mode of ['pp', 'specpipe', 'tree'] as const) {
      const ctl = new AbortController();
      const seen: [number, number][] = [];
      const sim = new SimPipeline({ numStages: 4, numSlots: 300, target: t });
      const res = await generate(sim, {
        mode, prompt, maxNewTokens: 200, sampling: GREEDY, source: oracle(t, GREEDY, 0.8), width: 2, signal: ctl.signal,
        onToken: (tok, i) => {
          seen.push([tok, i]);
          if (i === 20) ctl.abort();
        },
      });
      expect(res.stopReason).toBe('abort');
      expect(res.tokens.length).toBeGreaterThanOrEqual(21);
      expect(res.tokens.length).toBeLessThan(30);
      expect(res.tokens).toEqual(ref.tokens.slice(0, res.tokens.length));
      expect(seen).toEqual(res.tokens.map((tok, i) => [tok, i]));
      sim.drain();
      checkSlots(sim, prompt, res);
    }
  });

  it('an already-aborted signal generates nothing', async () => {
    const t = makeTarget(10);
    const sim = new SimPipeline({ numStages: 2, numSlots: 100, target: t });
    const ctl = new AbortController();
    ctl.abort();
    const res = await generate(sim, { mode: 'specpipe', prompt: [1, 2], maxNewTokens: 10, source: oracle(t, GREEDY, 1), signal: ctl.signal });
    expect(res).toMatchObject({ tokens: [], stopReason: 'abort' });
  });

  it('n-gram source: lossless, and it hits on repetitive text', async () => {
    // greedy on a toy LM whose logits depend on the last 2 tokens soon cycles: text repeats
    const t = toyTargetModel({ vocabSize: VOCAB, context: 2, seed: 12, eosToken: EOS, eosBias: -50 });
    const prompt = [3, 1, 4, 1, 5];
    const ref = referenceGenerate(t, prompt, 300, GREEDY);
    const { result, sim } = await runSim({ mode: 'specpipe', stages: 4, target: t, prompt, maxNewTokens: 300, sampling: GREEDY, source: new NgramSource({ maxN: 3 }), width: 1 });
    expect(result.tokens).toEqual(ref.tokens);
    expect(result.metrics.hitRate!).toBeGreaterThan(0.8);
    expect(result.metrics.tokensPerStep!).toBeGreaterThan(0.6);
    checkSlots(sim, prompt, result);
    const tr = await runSim({ mode: 'tree', stages: 4, target: t, prompt, maxNewTokens: 300, sampling: GREEDY, source: new NgramSource(), extra: { treeDepth: 3, treeWidth: 1 } });
    expect(tr.result.tokens).toEqual(ref.tokens);
  });
});

describe('scheduler: speed in pipeline steps', () => {
  const t = makeTarget(21, -50);
  const prompt = [2, 7, 1, 8];

  it('pp and single decode one token per S steps', async () => {
    for (const S of [1, 2, 4, 8]) {
      const { result } = await runSim({ mode: S === 1 ? 'single' : 'pp', stages: S, target: t, prompt, maxNewTokens: 40, sampling: GREEDY });
      expect(result.metrics.tokensPerStep).toBeCloseTo(1 / S, 10);
      expect(result.metrics.stepsToFirstToken).toBe(S); // the prompt is one level
      expect(result.metrics.levelsSent).toBe(1 + 39 + 1); // prompt, one per token but the last, final verdict
    }
  });

  it('specpipe with W=1 reaches the analytical bound 1/(p + (1-p) S) for the measured p (within 10%)', async () => {
    for (const S of [2, 4, 8]) {
      for (const p of [0.5, 0.8, 0.95]) {
        const { result } = await runSim({ mode: 'specpipe', stages: S, target: t, prompt, maxNewTokens: 1500, sampling: SAMPLED, source: oracle(t, SAMPLED, p, 3, 0), width: 1 });
        const m = result.metrics;
        expect(Math.abs(m.hitRate! - p), `S=${S} p=${p}`).toBeLessThan(0.06);
        const bound = specpipeBound(m.hitRate!, S).tokensPerStep;
        expect(m.boundTokensPerStep).toBeCloseTo(bound, 12);
        expect(Math.abs(m.tokensPerStep! - bound) / bound, `S=${S} p=${p}: ${m.tokensPerStep} vs ${bound}`).toBeLessThan(0.1);
        expect(m.boundSpeedupOverPp).toBeCloseTo(S * bound, 12);
      }
    }
  });

  it('specpipe with a perfect draft decodes one token per step; W>1 raises the hit rate', async () => {
    const perfect = await runSim({ mode: 'specpipe', stages: 8, target: t, prompt, maxNewTokens: 300, sampling: SAMPLED, source: oracle(t, SAMPLED, 1), width: 1 });
    expect(perfect.result.metrics.hitRate).toBe(1);
    expect(perfect.result.metrics.tokensPerStep).toBe(1);
    const w1 = await runSim({ mode: 'specpipe', stages: 4, target: t, prompt, maxNewTokens: 600, sampling: SAMPLED, source: oracle(t, SAMPLED, 0.5, 3, 0.8), width: 1 });
    const w4 = await runSim({ mode: 'specpipe', stages: 4, target: t, prompt, maxNewTokens: 600, sampling: SAMPLED, source: oracle(t, SAMPLED, 0.5, 3, 0.8), width: 4 });
    expect(w4.result.metrics.hitRate!).toBeGreaterThan(w1.result.metrics.hitRate! + 0.1);
    expect(w4.result.metrics.tokensPerStep!).toBeGreaterThan(w1.result.metrics.tokensPerStep!);
    // the bound holds for wider levels too: each hit costs one step, each miss S
    const b = specpipeBound(w4.result.metrics.hitRate!, 4).tokensPerStep;
    expect(Math.abs(w4.result.metrics.tokensPerStep! - b) / b).toBeLessThan(0.1);
    // a level never carries more than W rows after the prompt
    expect(w4.result.metrics.rowsSent).toBeLessThanOrEqual(prompt.length + 4 * w4.result.metrics.levelsSent);
  });

  it('a pipeline without a step clock: tokens per step from its step time agree with the counted steps', async () => {
    const S = 4;
    const numSlots = prompt.length + 200 + 10;
    const counted = new SimPipeline({ numStages: S, numSlots, target: t });
    const timed = new SimPipeline({ numStages: S, numSlots, target: t });
    const STEP_MS = 7; // the clock advances one step time per simulated step
    const opts = { mode: 'specpipe' as const, prompt, maxNewTokens: 200, sampling: SAMPLED, width: 1 };
    const a = await generate(counted, { ...opts, source: oracle(t, SAMPLED, 0.7, 3, 0) });
    const clockless = Object.assign(Object.create(timed) as SimPipeline, { stepCount: () => null, stepTimeMs: () => STEP_MS });
    const b = await generate(clockless, { ...opts, source: oracle(t, SAMPLED, 0.7, 3, 0), now: () => timed.stepCount() * STEP_MS });
    expect(b.tokens).toEqual(a.tokens);
    expect(b.metrics.tokensPerStep).toBeCloseTo(a.metrics.tokensPerStep!, 10);
    expect(b.metrics.stepsToFirstToken).toBeCloseTo(a.metrics.stepsToFirstToken!, 10);
  });

  it('tree mode commits the accepted prefix plus one token per round of S steps', async () => {
    const { result } = await runSim({ mode: 'tree', stages: 4, target: t, prompt, maxNewTokens: 400, sampling: GREEDY, source: oracle(t, GREEDY, 1), extra: { treeDepth: 3, treeWidth: 2 } });
    const m = result.metrics;
    expect(m.tokensPerRound!).toBeGreaterThan(3.9); // perfect draft: D accepted + 1
    expect(m.tokensPerStep!).toBeCloseTo(4 / 4, 1);
  });

  it('metrics: percentiles and TBT', async () => {
    expect(percentile([5, 1, 3, 2, 4], 0.5)).toBe(3);
    expect(percentile([5, 1, 3, 2, 4], 0.95)).toBe(5);
    expect(percentile([], 0.5)).toBeNull();
    let clock = 0;
    const sim = new SimPipeline({ numStages: 3, numSlots: 100, target: t });
    const wait = sim.waitForProgress.bind(sim);
    sim.waitForProgress = async () => {
      clock += 10;
      return wait();
    };
    const res = await generate(sim, { mode: 'pp', prompt, maxNewTokens: 10, now: () => clock });
    expect(res.metrics.tbtP50Ms).toBe(30);
    expect(res.metrics.tbtP95Ms).toBe(30);
    expect(res.metrics.ttftMs).toBe(30);
  });
});

describe('scheduler: the draft off the critical path, the dynamic tree', () => {
  const t = makeTarget(8);
  const prompt = [2, 7, 1, 8];

  /** The oracle, recording stage 1's credit when each proposal is asked for. */
  function watchedOracle(sim: { credit(): number }, p: number, pLater = 0.5) {
    const src = oracle(t, SAMPLED, p, 3, pLater);
    const creditAtAsk: number[] = [];
    const propose = src.propose.bind(src);
    src.propose = (f, k) => {
      creditAtAsk.push(sim.credit());
      return propose(f, k);
    };
    return { src, creditAtAsk };
  }

  it('specpipe asks the draft for the next level while the current one is in flight (stage 1 without credit)', async () => {
    const S = 4;
    const sim = new SimPipeline({ numStages: S, numSlots: prompt.length + 200 + reservedSlots('specpipe', S, { width: 2 }), target: t });
    // a step takes time, as on a real ring: the stages move on a task after the leader waits
    const tick = sim.waitForProgress.bind(sim);
    sim.waitForProgress = async () => {
      await new Promise((r) => setTimeout(r, 0));
      return tick();
    };
    const { src, creditAtAsk } = watchedOracle(sim, 0.8);
    const res = await generate(sim, { mode: 'specpipe', prompt, maxNewTokens: 200, sampling: SAMPLED, source: src, width: 2 });
    sim.drain();
    expect(res.tokens).toEqual(referenceGenerate(t, prompt, 200, SAMPLED).tokens);
    // the level just sent occupies stage 1: a proposal made then is ready when the credit returns
    const ahead = creditAtAsk.filter((c) => c === 0).length / creditAtAsk.length;
    expect(ahead).toBeGreaterThan(0.8);
    expect(res.metrics.draftWaitPerLevelMs).not.toBeNull();
  });

  it('a source that fails mid-generation fails the generation with its error (proposals and queued commits alike)', async () => {
    for (const where of ['propose', 'commit'] as const) {
      const src = oracle(t, SAMPLED, 0.8);
      let calls = 0;
      const real = src[where].bind(src) as (...a: never[]) => Promise<never>;
      (src as unknown as Record<string, unknown>)[where] = (...a: never[]) => (++calls === 5 ? Promise.reject(new Error(`draft ${where} broke`)) : real(...a));
      await expect(runSim({ mode: 'specpipe', stages: 4, target: t, prompt, maxNewTokens: 100, sampling: SAMPLED, source: src, width: 2 })).rejects.toThrow(`draft ${where} broke`);
    }
  });

  it('the dynamic tree: a confident draft makes a chain, an unsure one spends the width W; lossless either way', async () => {
    /** Two candidates per node whose probabilities are `top` and `second` (the truth is the top one half the time). */
    const scripted = (top: number, second: number): SpeculativeSource => {
      const o = oracle(t, SAMPLED, 0.5, 9, 1);
      return {
        name: 'scripted', begin: (b) => o.begin(b), commit: (c) => o.commit(c), end: () => o.end(),
        propose: async (f, k) => (await o.propose(f, k)).map((cs) => cs.map((c, i) => ({ token: c.token, logprob: Math.log(i === 0 ? top : second) }))),
      };
    };
    const ref = referenceGenerate(t, prompt, 150, SAMPLED).tokens;
    const rowsPerLevel = async (src: SpeculativeSource, minBranchRatio: number): Promise<number> => {
      const { result } = await runSim({ mode: 'specpipe', stages: 4, target: t, prompt, maxNewTokens: 150, sampling: SAMPLED, source: src, width: 3, extra: { minBranchRatio } });
      expect(result.tokens).toEqual(ref);
      const m = result.metrics;
      return (m.rowsSent - prompt.length) / (m.levelsSent - 2); // minus the prompt level and the final verdict
    };
    const confident = await rowsPerLevel(scripted(0.95, 0.02), 0.1);
    const unsure = await rowsPerLevel(scripted(0.5, 0.4), 0.1);
    const fixed = await rowsPerLevel(scripted(0.95, 0.02), 0);
    expect(confident).toBeLessThan(1.3);
    expect(unsure).toBeGreaterThan(1.8);
    expect(fixed).toBeGreaterThan(1.8);
  });
});
