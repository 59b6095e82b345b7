// A generation that survived a lost stage tab runs as several scheduler calls: the leader's report
// recomputes what spans them from its own commit times.
import { describe, it, expect } from 'vitest';
import { mergedMetrics } from '../src/app/mesh-session.ts';
import type { GenerateMetrics } from '../src/spec/scheduler.ts';

describe('mergedMetrics', () => {
  it('spans every attempt: first token, gaps between tokens (the recovery included), totals', () => {
    const last = { mode: 'pp', stages: 2, promptTokens: 9, committedTokens: 3, ttftMs: 400, tbtP50Ms: 10, tbtP95Ms: 10, totalMs: 450, levelsSent: 5, hits: 0, misses: 2 } as GenerateMetrics;
    // Attempt 1 committed 4 tokens (t = 110..140), the ring was re-formed, attempt 2 committed 3 (+ EOS).
    const m = mergedMetrics(last, { promptTokens: 5, before: 4, t0: 100, end: 1200, commitTimes: [110, 120, 130, 140, 1100, 1110, 1120] });
    expect(m.promptTokens).toBe(5);
    expect(m.committedTokens).toBe(7);
    expect(m.ttftMs).toBe(10);
    expect(m.totalMs).toBe(1100);
    expect(m.tbtP50Ms).toBe(10);
    expect(m.tbtP95Ms).toBe(960); // the gap over the recovery
    expect(m.levelsSent).toBe(5); // counters: the final attempt's
  });
});
