// How fast a generation decoded, one definition everywhere (the scheduler's metrics, the engines'
// reports, live stats, the mesh's merged attempts, the bench):
// - mean time between tokens (TBT) = decode time / (tokens - 1), decode time running from the first
//   emitted token to the last; tokens per second is its inverse;
// - tokens per step = a reference step / mean TBT (the bench's reference is pp's step in the same
//   configuration, so a mode whose steps got slower loses tokens per step);
// - the bound with hops (SPECPIPE.md): with t the bottleneck stage's time per level, h the one-way
//   hop and S stages, a level's round trip is R = S t + (S+1) h; SpecPipe needs at least
//   p t + (1-p) R per token at hit rate p (pp: R, p = 0), a static tree R / (tokens per round);
//   efficiency = bound TBT / measured TBT (1 = at the bound).
// Pure: tested in Node.
import { percentile } from '../common/numerics.ts';

/** Decode speed from the times tokens were emitted (ms). */
export interface TbtSummary {
  tokens: number;
  /** First emitted token to the last (null with fewer than two). */
  decodeMs: number | null;
  /** decodeMs / (tokens - 1). */
  meanMs: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
  /** 1000 / meanMs. */
  tokensPerSecond: number | null;
}

/** Mean and percentiles of the time between tokens emitted at `times` (ms, in order). */
export function tbtSummary(times: readonly number[]): TbtSummary {
  const n = times.length;
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  const decodeMs = n > 1 ? times[n - 1] - times[0] : null;
  const meanMs = decodeMs !== null ? decodeMs / (n - 1) : null;
  return { tokens: n, decodeMs, meanMs, p50Ms: percentile(gaps, 0.5), p95Ms: percentile(gaps, 0.95), tokensPerSecond: meanMs ? 1000 / meanMs : null };
}

/** Mean TBT over several runs (prompts) of one configuration: all their decode time over all their gaps. */
export function pooledTbtMs(runs: readonly { decodeMs: number | null; tokens: number }[]): number | null {
  let ms = 0;
  let gaps = 0;
  for (const r of runs) {
    if (r.decodeMs === null || r.tokens < 2) continue;
    ms += r.decodeMs;
    gaps += r.tokens - 1;
  }
  return gaps > 0 ? ms / gaps : null;
}

/** Tokens per pipeline step: how many reference steps of `stepMs` one token costs, inverted. */
export function tokensPerStep(stepMs: number | null, tbtMeanMs: number | null): number | null {
  return stepMs !== null && tbtMeanMs ? stepMs / tbtMeanMs : null;
}

/** Steps per token p + (1-p) S, as tokens per step and as the speed-up over pp (hops left out). */
export function specpipeBound(p: number, stages: number): { tokensPerStep: number; speedupOverPp: number } {
  const stepsPerToken = p + (1 - p) * stages;
  return { tokensPerStep: 1 / stepsPerToken, speedupOverPp: stages / stepsPerToken };
}

/** A level's round trip R = S t + (S+1) h (t: bottleneck stage time per level, h: one-way hop). */
export function roundTripMs(stages: number, stepMs: number, hopMs: number): number {
  return stages * stepMs + (stages + 1) * hopMs;
}

/** What a run's bound is made of, measured in that run (or taken from the configuration's reference). */
export interface BoundInputs {
  stages: number;
  /** t: the bottleneck stage's time per level, ms. */
  stepMs: number | null;
  /** h: one-way hop time, ms (0 with every stage in one tab). */
  hopMs: number;
  /** SpecPipe's law: the hit rate p (null: pp's law, one token per round trip). */
  hitRate?: number | null;
  /** A static tree's law: committed tokens per round (wins over hitRate). */
  tokensPerRound?: number | null;
}

/** The least mean TBT a mode can reach, and how it was derived. */
export interface TbtBound {
  /** 'specpipe': p t + (1-p) R; 'pipeline' (pp, single, and specpipe/tree without guesses): R; 'tree': R / tokens per round. */
  law: 'specpipe' | 'pipeline' | 'tree';
  stages: number;
  stepMs: number;
  hopMs: number;
  roundTripMs: number;
  hitRate: number | null;
  tokensPerRound: number | null;
  /** The bound on mean TBT, ms. */
  tbtMs: number;
}

/** The bound on mean TBT by the law the inputs name, or null when t is not known (or no tree round ran). */
export function tbtBound(b: BoundInputs): TbtBound | null {
  if (b.stepMs === null || !(b.stepMs >= 0)) return null;
  const R = roundTripMs(b.stages, b.stepMs, b.hopMs);
  const base = { stages: b.stages, stepMs: b.stepMs, hopMs: b.hopMs, roundTripMs: R, hitRate: null, tokensPerRound: null };
  if (b.tokensPerRound !== undefined && b.tokensPerRound !== null) {
    if (!(b.tokensPerRound > 0)) return null;
    return { ...base, law: 'tree', tokensPerRound: b.tokensPerRound, tbtMs: R / b.tokensPerRound };
  }
  if (b.hitRate !== undefined && b.hitRate !== null) {
    const p = b.hitRate;
    return { ...base, law: 'specpipe', hitRate: p, tbtMs: p * b.stepMs + (1 - p) * R };
  }
  return { ...base, law: 'pipeline', tbtMs: R };
}

/** bound TBT / measured TBT: 1 at the bound, lower when the run lost time the law does not explain. */
export function efficiency(bound: TbtBound | null, measuredTbtMs: number | null): number | null {
  return bound && measuredTbtMs ? bound.tbtMs / measuredTbtMs : null;
}
