// The leader's report: metrics merged over the attempts of a generation that survived a lost stage
// tab, and which link measures which hop of the ring.
import { describe, it, expect } from 'vitest';
import { mergedMetrics, ringHops, type StatsReply } from '../src/app/mesh-report.ts';
import type { LinkStats } from '../src/mesh/peer.ts';
import type { GenerateMetrics } from '../src/speculative/scheduler.ts';

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

describe('ringHops', () => {
  const link = (peer: string, p50: number): LinkStats => ({ peer, state: 'open', rttSamples: 4, rttP50: p50, rttP95: p50 * 2, rttMax: p50 * 3, messagesSent: 0, messagesReceived: 0, bytesSent: 0, bytesReceived: 0, queuedBytes: 0 });
  const reply = (p50: number | null): StatsReply => ({ type: 'stats', request: 3, packets: 1, rowsComputed: 1, rowsDropped: 0, busyMs: 1, spanMs: 1, nextRttP50Ms: p50, nextRttP95Ms: p50, nextRttSamples: p50 === null ? 0 : 2, levels: 1, overruns: 0, levelMsP50: 1 });

  it('leader links for the first and last hop, each stage\'s link to its next node in between', () => {
    const leaderLinks = new Map([['a', link('a', 1)], ['c', link('c', 3)]]);
    const hops = ringHops(['L', 'a', 'b', 'c'], (p) => leaderLinks.get(p), new Map([['a', reply(10)], ['b', reply(20)]]));
    expect(hops.map((h) => [h.from, h.to, h.rttP50Ms, h.samples])).toEqual([
      ['leader', 'stage 1', 1, 4],
      ['stage 1', 'stage 2', 10, 2],
      ['stage 2', 'stage 3', 20, 2],
      ['stage 3', 'leader', 3, 4],
    ]);
  });

  it('one stage: both hops are the leader\'s link to it; a silent stage leaves its hop empty', () => {
    expect(ringHops(['L', 'a'], (p) => (p === 'a' ? link('a', 5) : undefined), new Map()).map((h) => h.rttP50Ms)).toEqual([5, 5]);
    expect(ringHops(['L', 'a', 'b'], () => undefined, new Map()).map((h) => h.rttP50Ms)).toEqual([null, null, null]);
  });
});
