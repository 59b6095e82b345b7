// The soak's verdict (src/cli/soak-report.ts): memory growth per tab from its first minute in the ring
// to its last, and a run passes only with every output equal to single's, nothing lost, growth < 5%.
import { describe, expect, it } from 'vitest';
import { memoryGrowth, summarize, summaryText, soakHtml, type MemorySample, type SoakLog } from '../src/cli/soak-report.ts';

/** Samples every 10 s from `from` to `to` (ms) whose heap goes linearly from h0 to h1. */
function tab(name: string, from: number, to: number, h0: number, h1: number, inRing = (_ms: number) => true): MemorySample[] {
  const out: MemorySample[] = [];
  for (let t = from; t <= to; t += 10_000) out.push({ tab: name, atMs: t, heapBytes: h0 + ((h1 - h0) * (t - from)) / (to - from), gpuBytes: 1000, inRing: inRing(t) });
  return out;
}

const log = (memory: MemorySample[], gens: Partial<SoakLog['generations'][number]>[] = [{}]): SoakLog => ({
  startedAt: '', minutes: 3, stages: 3, mode: 'specpipe', chaos: [{ atMs: 5000, what: 'closed stage tab 1' }],
  generations: gens.map((g) => ({ atMs: 0, prompt: 0, tokens: 32, same: true, recoveries: [{ recoveryMs: 900, tokensLost: 0, plan: 'p', prefilled: [0, 9, 1] }], ...g })),
  memory,
});

describe('soak report', () => {
  it('growth compares a tab\'s first minute in the ring with its last; short-lived tabs and waiting spares are left out', () => {
    const g = memoryGrowth([
      ...tab('leader', 0, 180_000, 100, 100),
      ...tab('stage', 0, 180_000, 100, 130),
      ...tab('killed', 0, 40_000, 100, 500),
      // A spare waits (not in the ring) with a small heap, then takes layers at 60 s: measured from then.
      ...tab('spare', 0, 180_000, 50, 110, (t) => t >= 60_000),
    ]);
    expect(g.map((x) => x.tab)).toEqual(['leader', 'stage', 'spare']);
    expect(g[0].heapGrowth).toBeCloseTo(0, 6);
    // stage: first minute mean ~105, last minute ~125
    expect(g[1].heapGrowth).toBeGreaterThan(0.15);
    expect(g[1].heapGrowth).toBeLessThan(0.25);
    expect(g[2].heapGrowth).toBeLessThan(0.3);
  });

  it('passes only when every output equals single\'s, nothing is lost and no tab grows 5%', () => {
    const flat = [...tab('leader', 0, 120_000, 100, 102), ...tab('s', 0, 120_000, 100, 101)];
    expect(summarize(log(flat)).ok).toBe(true);
    expect(summarize(log(flat, [{ same: false }])).ok).toBe(false);
    expect(summarize(log(flat, [{ error: 'x' }])).ok).toBe(false);
    expect(summarize(log(flat, [{ recoveries: [{ recoveryMs: 1, tokensLost: 1, plan: '', prefilled: [] }] }])).ok).toBe(false);
    expect(summarize(log([...flat, ...tab('grows', 0, 120_000, 100, 120)])).ok).toBe(false);
    expect(summarize(log([])).ok).toBe(false); // no tab measured: no verdict on memory
    const s = summarize(log(flat));
    expect(s).toMatchObject({ generations: 1, recoveries: 1, tokensLost: 0, recoveryMsP50: 900 });
    expect(summaryText(log(flat), s)).toMatch(/^soak: 3 min, 3 stage tabs, specpipe: 1 generations \(0 failed, 0 differ from single\), 1 recoveries/);
    expect(soakHtml(log(flat), s, 120_000)).toContain('<polyline');
  });
});
