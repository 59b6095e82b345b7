// The one definition of decode speed (src/speculative/metrics.ts) and the bound with hops: known
// numbers from SPECPIPE.md, and the scripted pipeline with a clock where every step takes t ms: pp
// and specpipe land on their bounds, and a mode whose steps got slower loses efficiency against
// pp's step (the configuration's one reference).
import { describe, expect, it } from 'vitest';
import { efficiency, pooledTbtMs, roundTripMs, specpipeBound, tbtBound, tbtSummary, tokensPerStep } from '../src/speculative/metrics.ts';
import { generate, type Mode } from '../src/speculative/scheduler.ts';
import { bottleneckStepMs, runBound } from '../src/app/generation.ts';
import { SimPipeline } from './support/sim-pipeline.ts';
import { makeTarget, oracle } from './support/speculative-helpers.ts';

describe('mean time between tokens', () => {
  it('is decode time (first token to last) over the tokens after the first; tokens/s is its inverse', () => {
    const s = tbtSummary([100, 110, 110, 160]);
    expect(s).toEqual({ tokens: 4, decodeMs: 60, meanMs: 20, p50Ms: 10, p95Ms: 50, tokensPerSecond: 50 });
    expect(tbtSummary([5])).toMatchObject({ decodeMs: null, meanMs: null, tokensPerSecond: null });
    // A burst at one instant: no division by zero.
    expect(tbtSummary([7, 7]).tokensPerSecond).toBeNull();
  });
  it('pools prompts: all decode time over all gaps (not a mean of means)', () => {
    expect(pooledTbtMs([{ decodeMs: 100, tokens: 3 }, { decodeMs: 600, tokens: 11 }, { decodeMs: null, tokens: 1 }])).toBe(700 / 12);
    expect(pooledTbtMs([])).toBeNull();
  });
  it('tokens per step: the reference step over mean TBT', () => {
    expect(tokensPerStep(50, 200)).toBe(0.25);
    expect(tokensPerStep(null, 200)).toBeNull();
  });
});

describe('the bound with hops (SPECPIPE.md: TBT >= p t + (1-p) R, R = S t + (S+1) h)', () => {
  const speedup = (S: number, p: number): number => roundTripMs(S, 50, 10) / tbtBound({ stages: S, stepMs: 50, hopMs: 10, hitRate: p })!.tbtMs;
  it('t = 50 ms, h = 10 ms: S = 4 gives R = 250 ms and 2.8x at p = 0.8, 3.6x at p = 0.9', () => {
    expect(roundTripMs(4, 50, 10)).toBe(250);
    expect(tbtBound({ stages: 4, stepMs: 50, hopMs: 10, hitRate: 0.8 })!.tbtMs).toBeCloseTo(0.8 * 50 + 0.2 * 250);
    expect(speedup(4, 0.8).toFixed(1)).toBe('2.8');
    expect(speedup(4, 0.9).toFixed(1)).toBe('3.6');
  });
  it('S = 8 gives R = 490 ms and 3.5x at p = 0.8, 5.2x at p = 0.9, 6.8x at p = 0.95', () => {
    expect(roundTripMs(8, 50, 10)).toBe(490);
    // 490 / 138 = 3.55 (the design note rounds it down to 3.5x), 490 / 94 = 5.21, 490 / 72 = 6.81.
    expect(speedup(8, 0.8)).toBeCloseTo(3.55, 2);
    expect([0.9, 0.95].map((p) => speedup(8, p).toFixed(1))).toEqual(['5.2', '6.8']);
  });
  it('pp pays R; a tree pays R per round over its tokens per round; without hops SpecPipe\'s law is p + (1-p) S steps', () => {
    expect(tbtBound({ stages: 4, stepMs: 50, hopMs: 10 })).toMatchObject({ law: 'pipeline', tbtMs: 250 });
    expect(tbtBound({ stages: 4, stepMs: 50, hopMs: 10, tokensPerRound: 2.5 })).toMatchObject({ law: 'tree', tbtMs: 100 });
    expect(tbtBound({ stages: 4, stepMs: 50, hopMs: 0, hitRate: 0.8 })!.tbtMs / 50).toBeCloseTo(1 / specpipeBound(0.8, 4).tokensPerStep);
    expect(tbtBound({ stages: 4, stepMs: null, hopMs: 0, hitRate: 0.8 })).toBeNull();
    expect(efficiency(tbtBound({ stages: 4, stepMs: 50, hopMs: 10 }), 500)).toBe(0.5);
  });
  it('a run\'s bound takes the slowest stage and its mode\'s law; tree gets no SpecPipe bound', () => {
    expect(bottleneckStepMs([20, null, 35, 30])).toBe(35);
    expect(bottleneckStepMs([null])).toBeNull();
  });
});

describe('metrics against the scripted pipeline (every step takes t ms)', () => {
  const target = makeTarget(21, -50);
  const prompt = [2, 7, 1, 8];
  const sampling = { temperature: 0.8, topK: 0, topP: 0.95, seed: 5 };
  const S = 4;

  /** A generation whose clock reads the simulator's step count times `stepMs`. */
  async function run(mode: Mode, stepMs: number, p = 0.8) {
    const sim = new SimPipeline({ numStages: S, numSlots: prompt.length + 400 + 20, target });
    const res = await generate(sim, { mode, prompt, maxNewTokens: 400, sampling, width: 1, source: mode === 'pp' ? null : oracle(target, sampling, p, 3, 0), now: () => sim.stepCount() * stepMs });
    return res.metrics;
  }

  it('pp takes S steps per token and sits at its bound R (no hops here)', async () => {
    const m = await run('pp', 10);
    expect(m.tbtMeanMs).toBeCloseTo(S * 10, 6);
    const b = runBound(m, 10, 0)!;
    expect(b.law).toBe('pipeline');
    expect(b.tbtMs).toBe(40);
    expect(b.efficiency).toBeCloseTo(1, 6);
  });

  it('specpipe reaches its bound p t + (1-p) R within 10% at the reference step, and pp\'s speed-up follows', async () => {
    const pp = await run('pp', 10);
    const sp = await run('specpipe', 10);
    const b = runBound(sp, 10, 0)!;
    expect(b.law).toBe('specpipe');
    expect(b.tbtMs).toBeCloseTo(sp.hitRate! * 10 + (1 - sp.hitRate!) * 40, 9);
    expect(b.efficiency!).toBeGreaterThan(0.9);
    expect(b.efficiency!).toBeLessThan(1.1);
    const speedup = pp.tbtMeanMs! / sp.tbtMeanMs!;
    expect(speedup).toBeCloseTo(specpipeBound(sp.hitRate!, S).speedupOverPp, 0);
    // Tokens per step against pp's step (pp's TBT / S).
    expect(tokensPerStep(pp.tbtMeanMs! / S, sp.tbtMeanMs)).toBeCloseTo(speedup / S, 9);
  });

  it('a mode whose steps got slower loses efficiency and tokens per step against the reference step', async () => {
    const pp = await run('pp', 10);
    const ref = pp.tbtMeanMs! / S; // pp's measured step: the configuration's one reference
    const fast = await run('specpipe', 10);
    const slow = await run('specpipe', 15); // same hits and misses, every step 1.5x as long
    expect(slow.hitRate).toBe(fast.hitRate);
    const eFast = runBound(fast, ref, 0)!.efficiency!;
    const eSlow = runBound(slow, ref, 0)!.efficiency!;
    expect(eSlow).toBeCloseTo(eFast / 1.5, 6);
    expect(tokensPerStep(ref, slow.tbtMeanMs)).toBeCloseTo(tokensPerStep(ref, fast.tbtMeanMs)! / 1.5, 6);
    // Measured against its own (slower) step the slow run would look as good as the fast one.
    expect(runBound(slow, 15, 0)!.efficiency).toBeCloseTo(eFast, 6);
  });

  it('tree mode is measured by the tree\'s law, not SpecPipe\'s', async () => {
    const m = await run('tree', 10, 0.9);
    expect(m.boundTokensPerStep).toBeNull();
    expect(m.boundSpeedupOverPp).toBeNull();
    const b = runBound(m, 10, 0)!;
    expect(b.law).toBe('tree');
    expect(b.tbtMs).toBeCloseTo(40 / m.tokensPerRound!, 9);
  });
});
