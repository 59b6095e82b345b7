// Live generation statistics from token and stage events, with the decode-speed definitions of
// src/speculative/metrics.ts (the same the reports use). Pure: tested in Node.
import type { PacketTrace } from '../pipeline/stage-runner.ts';
import { specpipeBound, tbtSummary, tokensPerStep } from '../speculative/metrics.ts';
import type { Mode } from '../speculative/scheduler.ts';
import { isSpeculative, type DraftKind } from './modes.ts';

export interface StatsSnapshot {
  tokens: number;
  /** Decode rate after the first token: 1000 / tbtMeanMs. */
  tokensPerSecond: number | null;
  /** Mean time between tokens: first token to the last over the tokens after the first. */
  tbtMeanMs: number | null;
  lastTbtMs: number | null;
  tbtP50Ms: number | null;
  tbtP95Ms: number | null;
  hits: number;
  misses: number;
  hitRate: number | null;
  /** Mean time of one level on one stage (decode levels of every stage in this tab): this run's own "pipeline step". */
  stepMs: number | null;
  /** Tokens per step: step time / mean TBT (against this run's own step). */
  tokensPerStep: number | null;
  /** 1 / (p + (1-p) S) for the measured hit rate p (p = 0 without speculation; null for tree, whose law is per round). */
  boundTokensPerStep: number | null;
}

/** Which law a run's tokens per step follow: pp's (one per round trip), SpecPipe's, or a static tree's (per round). */
export type StatsLaw = 'pipeline' | 'specpipe' | 'tree';

/** The law of a run in `mode` with speculative source `draft` (a speculative mode without a source is pp). */
export function statsLaw(mode: Mode, draft: DraftKind | undefined): StatsLaw {
  if (!isSpeculative(mode) || draft === 'none') return 'pipeline';
  return mode === 'tree' ? 'tree' : 'specpipe';
}

/** What a headless page streams to the command line, one event per token or stage packet. */
export type LiveEvent = { kind: 'token'; t: number; hit: boolean; text: string } | { kind: 'packet'; stage: number; packet: PacketTrace };

export class LiveStats {
  private readonly times: number[] = [];
  private hits = 0;
  private misses = 0;
  private lastHit: boolean | null = null;
  private busyMs = 0;
  private packets = 0;

  constructor(
    private readonly stages: number,
    /** 'pipeline': no speculation (every token a miss: one full trip each); 'specpipe' / 'tree': speculating. */
    private readonly law: StatsLaw,
  ) {}

  private get speculative(): boolean {
    return this.law !== 'pipeline';
  }

  /**
   * A committed token at time `t` (ms); `hit` says whether the NEXT one is already in flight (null:
   * not known live, e.g. from stage tabs; hits are then left out).
   */
  token(t: number, hit: boolean | null): void {
    // A commit's hit decides the next token's wait, so it is counted when that token arrives.
    if (this.lastHit === true) this.hits++;
    else if (this.lastHit === false) this.misses++;
    this.lastHit = hit;
    this.times.push(t);
  }

  packet(p: PacketTrace): void {
    // Decode steps only: the prompt's prefill levels are much heavier than a step.
    if (p.rowsComputed === 0 || this.times.length === 0) return;
    this.busyMs += p.endMs - p.startMs;
    this.packets++;
  }

  apply(e: LiveEvent): void {
    if (e.kind === 'token') this.token(e.t, e.hit);
    else this.packet(e.packet);
  }

  snapshot(): StatsSnapshot {
    const n = this.times.length;
    const tbt = tbtSummary(this.times);
    const judged = this.hits + this.misses;
    const hitRate = judged > 0 ? this.hits / judged : null;
    const stepMs = this.packets > 0 ? this.busyMs / this.packets : null;
    const p = this.speculative ? hitRate : 0;
    return {
      tokens: n,
      tokensPerSecond: tbt.tokensPerSecond,
      tbtMeanMs: tbt.meanMs,
      lastTbtMs: n > 1 ? this.times[n - 1] - this.times[n - 2] : null,
      tbtP50Ms: tbt.p50Ms,
      tbtP95Ms: tbt.p95Ms,
      hits: this.hits,
      misses: this.misses,
      hitRate: this.speculative ? hitRate : null,
      stepMs,
      tokensPerStep: tokensPerStep(stepMs, tbt.meanMs),
      boundTokensPerStep: p === null || this.law === 'tree' ? null : specpipeBound(p, this.stages).tokensPerStep,
    };
  }
}

/** One line for a terminal. */
export function statsLine(s: StatsSnapshot): string {
  const f = (v: number | null, d: number): string => (v === null ? '-' : v.toFixed(d));
  const hit = s.hitRate === null ? '' : ` · hit ${(s.hitRate * 100).toFixed(0)}%`;
  const step = s.tokensPerStep === null && s.boundTokensPerStep === null ? '' : ` · ${f(s.tokensPerStep, 2)} tok/step (bound ${f(s.boundTokensPerStep, 2)})`;
  return `${s.tokens} tok · ${f(s.tokensPerSecond, 1)} tok/s · between tokens mean ${f(s.tbtMeanMs, 1)} ms p50 ${f(s.tbtP50Ms, 1)} ms p95 ${f(s.tbtP95Ms, 1)} ms${hit}${step}`;
}
