// Live generation statistics from token and stage events. Pure: tested in Node.
import type { PacketTrace } from '../pipeline/stage-runner.ts';
import { specpipeBound } from '../speculative/scheduler.ts';
import { percentile } from '../common/numerics.ts';

export interface StatsSnapshot {
  tokens: number;
  /** Decode rate after the first token. */
  tokensPerSecond: number | null;
  lastTbtMs: number | null;
  tbtP50Ms: number | null;
  tbtP95Ms: number | null;
  hits: number;
  misses: number;
  hitRate: number | null;
  /** Mean compute time of one level on one stage: the "pipeline step". */
  stepMs: number | null;
  /** Tokens per step: decode rate x step time. */
  tokensPerStep: number | null;
  /** 1 / (p + (1-p) S) for the measured hit rate p (p = 0 without speculation). */
  boundTokensPerStep: number | null;
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
    /** Whether the mode speculates (else every token counts as a miss: one full trip each). */
    private readonly speculative: boolean,
  ) {}

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
    const gaps = this.times.slice(1).map((t, i) => t - this.times[i]);
    const span = n > 1 ? this.times[n - 1] - this.times[0] : 0;
    const tokensPerSecond = span > 0 ? ((n - 1) * 1000) / span : null;
    const judged = this.hits + this.misses;
    const hitRate = judged > 0 ? this.hits / judged : null;
    const stepMs = this.packets > 0 ? this.busyMs / this.packets : null;
    const p = this.speculative ? hitRate : 0;
    return {
      tokens: n,
      tokensPerSecond,
      lastTbtMs: gaps.length ? gaps[gaps.length - 1] : null,
      tbtP50Ms: percentile(gaps, 0.5),
      tbtP95Ms: percentile(gaps, 0.95),
      hits: this.hits,
      misses: this.misses,
      hitRate: this.speculative ? hitRate : null,
      stepMs,
      tokensPerStep: tokensPerSecond !== null && stepMs !== null ? (tokensPerSecond * stepMs) / 1000 : null,
      boundTokensPerStep: p === null ? null : specpipeBound(p, this.stages).tokensPerStep,
    };
  }
}

/** One line for a terminal. */
export function statsLine(s: StatsSnapshot): string {
  const f = (v: number | null, d: number): string => (v === null ? '-' : v.toFixed(d));
  const hit = s.hitRate === null ? '' : ` · hit ${(s.hitRate * 100).toFixed(0)}%`;
  const step = s.tokensPerStep === null && s.boundTokensPerStep === null ? '' : ` · ${f(s.tokensPerStep, 2)} tok/step (bound ${f(s.boundTokensPerStep, 2)})`;
  return `${s.tokens} tok · ${f(s.tokensPerSecond, 1)} tok/s · between tokens p50 ${f(s.tbtP50Ms, 1)} ms p95 ${f(s.tbtP95Ms, 1)} ms${hit}${step}`;
}
