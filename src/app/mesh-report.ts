// The leader's report pieces that do not need the network: per-stage work and per-hop round trips
// from the stages' stats replies, and metrics merged over the attempts of one generation.
import type { LinkStats } from '../mesh/peer.ts';
import type { MeshMessage } from '../mesh/protocol.ts';
import type { GenerateMetrics } from '../speculative/scheduler.ts';
import { tbtSummary } from '../speculative/metrics.ts';
import type { HopLatency, MeshStageView, StageWork } from './mesh-types.ts';

export type StatsReply = Extract<MeshMessage, { type: 'stats' }>;

export function stageWork(replies: { id: string; reply: StatsReply }[], roleOf: (id: string) => string | null, wallMs: number): StageWork[] {
  return replies.map(({ id, reply: s }) => ({
    id, role: roleOf(id), packets: s.packets, rowsComputed: s.rowsComputed, rowsDropped: s.rowsDropped, busyMs: s.busyMs, busyFraction: s.busyMs / wallMs,
    levels: s.levels, overruns: s.overruns, levelMsP50: s.levelMsP50,
  }));
}

/**
 * Hops of the ring `order` ([leader, stage 1, ..., stage N]): leader -> stage 1 and stage N ->
 * leader from the leader's own links, stage i -> stage i+1 from stage i's reply (its link to the
 * next node); null where a stage did not reply.
 */
export function ringHops(order: readonly string[], leaderLink: (peer: string) => LinkStats | undefined, replies: ReadonlyMap<string, StatsReply>): HopLatency[] {
  const label = (i: number): string => (i === 0 || i === order.length ? 'leader' : `stage ${i}`);
  return order.map((id, i) => {
    let rtt: Pick<HopLatency, 'rttP50Ms' | 'rttP95Ms' | 'samples'> = { rttP50Ms: null, rttP95Ms: null, samples: 0 };
    const own = i === 0 ? leaderLink(order[1]) : i === order.length - 1 ? leaderLink(id) : undefined;
    const reply = i > 0 && i < order.length - 1 ? replies.get(id) : undefined;
    if (own) rtt = { rttP50Ms: own.rttP50, rttP95Ms: own.rttP95, samples: own.rttSamples };
    else if (reply) rtt = { rttP50Ms: reply.nextRttP50Ms, rttP95Ms: reply.nextRttP95Ms, samples: reply.nextRttSamples };
    return { from: label(i), to: label(i + 1), ...rtt };
  });
}

/**
 * The final attempt's metrics, with what spans attempts recomputed over the whole generation from
 * the times tokens were emitted (`commitTimes`): prompt length, committed tokens, first-token time,
 * time between tokens (metrics.ts's definition), total time. Counters (levels, rows, hits, misses)
 * cover the final attempt.
 */
export function mergedMetrics(last: GenerateMetrics, g: { promptTokens: number; before: number; t0: number; end: number; commitTimes: number[] }): GenerateMetrics {
  const tbt = tbtSummary(g.commitTimes);
  return {
    ...last,
    promptTokens: g.promptTokens,
    committedTokens: last.committedTokens + g.before,
    ttftMs: g.commitTimes.length ? g.commitTimes[0] - g.t0 : last.ttftMs,
    decodeMs: tbt.decodeMs,
    tbtMeanMs: tbt.meanMs,
    tbtP50Ms: tbt.p50Ms,
    tbtP95Ms: tbt.p95Ms,
    totalMs: g.end - g.t0,
  };
}

/** One-way hop time h: half the mean ping round trip (p50) of the ring's hops (0 when none was measured). */
export function hopOneWayMs(hops: readonly HopLatency[]): number {
  const rtts = hops.map((h) => h.rttP50Ms).filter((v): v is number => v !== null);
  return rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length / 2 : 0;
}

/** Bytes as MiB with one decimal, as the mesh view and the command line show memory. */
export const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** One stage of the ring in words: place, name, layers, device, weight and KV bytes, announced memory. */
export function stageViewLine(v: MeshStageView): string {
  const memory = v.memoryBytes === null ? 'memory not announced' : `memory ${mib(v.memoryBytes)} announced`;
  return `stage ${v.index} "${v.name}": ${v.role ?? '?'} on ${v.device || '?'}; weights ${mib(v.weightBytes)}, KV ${mib(v.kvBytes)}, ${memory}`;
}
