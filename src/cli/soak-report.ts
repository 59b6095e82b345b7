// The soak test's record and verdict (pure: tests/cli-soak.test.ts): every generation checked
// against single's tokens, every recovery with its time and lost tokens, and each tab's memory over
// time; a tab's growth compares its first minute in the ring with its last (after a forced GC at
// every sample), so a spare that takes layers mid-way is measured from then on.
import { esc, svgDoc, text } from '../ui/svg.ts';
import { percentile } from '../common/numerics.ts';

/** One memory sample of one tab: JS heap after GC, and GPU buffer bytes created and not destroyed since the tab opened. */
export interface MemorySample {
  tab: string;
  atMs: number;
  heapBytes: number;
  gpuBytes: number;
  /** The tab was the leader or held layers in the ring (a spare waiting does not count). */
  inRing: boolean;
}

/** One generation of the soak. */
export interface SoakGeneration {
  atMs: number;
  prompt: number;
  tokens: number;
  /** Its tokens equal single's for the same prompt and settings. */
  same: boolean;
  recoveries: { recoveryMs: number | null; tokensLost: number; plan: string; prefilled: number[] }[];
  /** Set when the generation failed. */
  error?: string;
}

/** A chaos event: a stage tab closed, or a new one joining as a spare. */
export interface ChaosEvent {
  atMs: number;
  what: string;
}

export interface SoakLog {
  startedAt: string;
  minutes: number;
  stages: number;
  mode: string;
  generations: SoakGeneration[];
  chaos: ChaosEvent[];
  memory: MemorySample[];
}

/** A tab's memory from its first minute in the ring to its last (tabs in the ring for at least a minute). */
export interface TabGrowth {
  tab: string;
  firstHeap: number;
  lastHeap: number;
  heapGrowth: number;
  firstGpu: number;
  lastGpu: number;
  gpuGrowth: number;
}

export interface SoakSummary {
  generations: number;
  failed: number;
  mismatched: number;
  recoveries: number;
  tokensLost: number;
  recoveryMsP50: number | null;
  recoveryMsMax: number | null;
  growth: TabGrowth[];
  /** The largest heap or GPU growth of any tab (0.05 = 5%). */
  maxGrowth: number;
  ok: boolean;
}

/** Allowed growth of a tab's memory from its first minute to its last. */
export const MAX_GROWTH = 0.05;

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Growth per tab: the mean of its in-ring samples in their first minute against those of their last minute. */
export function memoryGrowth(samples: readonly MemorySample[], windowMs = 60_000): TabGrowth[] {
  const tabs = [...new Set(samples.map((s) => s.tab))];
  return tabs.flatMap((tab) => {
    const mine = samples.filter((s) => s.tab === tab && s.inRing);
    if (!mine.length) return [];
    const [start, end] = [mine[0].atMs, mine[mine.length - 1].atMs];
    if (end - start < windowMs) return [];
    const first = mine.filter((s) => s.atMs <= start + windowMs);
    const last = mine.filter((s) => s.atMs >= end - windowMs);
    const [h0, h1] = [mean(first.map((s) => s.heapBytes)), mean(last.map((s) => s.heapBytes))];
    const [g0, g1] = [mean(first.map((s) => s.gpuBytes)), mean(last.map((s) => s.gpuBytes))];
    return [{ tab, firstHeap: h0, lastHeap: h1, heapGrowth: h0 > 0 ? (h1 - h0) / h0 : 0, firstGpu: g0, lastGpu: g1, gpuGrowth: g0 > 0 ? (g1 - g0) / g0 : g1 > 0 ? Infinity : 0 }];
  });
}

export function summarize(log: SoakLog): SoakSummary {
  const recs = log.generations.flatMap((g) => g.recoveries);
  const times = recs.map((r) => r.recoveryMs).filter((t): t is number => t !== null);
  const growth = memoryGrowth(log.memory);
  const maxGrowth = Math.max(0, ...growth.map((g) => Math.max(g.heapGrowth, g.gpuGrowth)));
  const failed = log.generations.filter((g) => g.error).length;
  const mismatched = log.generations.filter((g) => !g.error && !g.same).length;
  const tokensLost = recs.reduce((a, r) => a + r.tokensLost, 0);
  return {
    generations: log.generations.length,
    failed,
    mismatched,
    recoveries: recs.length,
    tokensLost,
    recoveryMsP50: percentile(times, 0.5),
    recoveryMsMax: percentile(times, 1),
    growth,
    maxGrowth,
    ok: log.generations.length > 0 && failed === 0 && mismatched === 0 && tokensLost === 0 && growth.length > 0 && maxGrowth < MAX_GROWTH,
  };
}

const pct = (x: number): string => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : 'from 0');
const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

export function summaryText(log: SoakLog, s: SoakSummary): string {
  const lines = [
    `soak: ${log.minutes} min, ${log.stages} stage tabs, ${log.mode}: ${s.generations} generations (${s.failed} failed, ${s.mismatched} differ from single), ` +
      `${s.recoveries} recoveries (${log.chaos.filter((c) => c.what.startsWith('closed')).length} tabs closed), tokens lost ${s.tokensLost}, ` +
      `recovery p50 ${s.recoveryMsP50?.toFixed(0) ?? '–'} ms, max ${s.recoveryMsMax?.toFixed(0) ?? '–'} ms`,
    ...s.growth.map((g) => `  ${g.tab}: JS heap ${mib(g.firstHeap)} -> ${mib(g.lastHeap)} (${pct(g.heapGrowth)}), GPU buffers ${mib(g.firstGpu)} -> ${mib(g.lastGpu)} (${pct(g.gpuGrowth)})`),
    s.ok ? `OK: every output equals single's, nothing lost, memory growth under ${MAX_GROWTH * 100}% per tab` : 'FAILED',
  ];
  return lines.join('\n');
}

/** An HTML page: each tab's JS heap over time, recoveries marked. */
export function soakHtml(log: SoakLog, s: SoakSummary, totalMs: number): string {
  const W = 900;
  const H = 320;
  const pad = 50;
  const tabs = [...new Set(log.memory.map((m) => m.tab))];
  const maxHeap = Math.max(1, ...log.memory.map((m) => m.heapBytes));
  const x = (ms: number): number => pad + ((W - 2 * pad) * ms) / Math.max(1, totalMs);
  const y = (b: number): number => H - pad - ((H - 2 * pad) * b) / maxHeap;
  const colours = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];
  const lines = tabs.map((tab, i) => {
    const pts = log.memory.filter((m) => m.tab === tab).map((m) => `${x(m.atMs).toFixed(1)},${y(m.heapBytes).toFixed(1)}`);
    return `<polyline fill="none" stroke="${colours[i % colours.length]}" points="${pts.join(' ')}"/>` + text(W - pad + 4, 20 + 14 * i, tab, `fill="${colours[i % colours.length]}" font-size="11"`);
  });
  const marks = log.chaos.map((c) => `<line x1="${x(c.atMs)}" x2="${x(c.atMs)}" y1="${pad}" y2="${H - pad}" stroke="${c.what.startsWith('closed') ? '#d62728' : '#aaa'}" stroke-dasharray="3,3"><title>${esc(c.what)}</title></line>`);
  const axes = text(pad, H - pad + 20, '0 min', 'font-size="11"') + text(W - pad - 30, H - pad + 20, `${(totalMs / 60_000).toFixed(1)} min`, 'font-size="11"') + text(4, pad, mib(maxHeap), 'font-size="11"');
  const svg = svgDoc(W + 120, H, [...marks, ...lines, axes].join(''), 'JS heap per tab over the soak; dashed: a stage tab closed (red) or joined (grey)');
  return `<!doctype html><meta charset="utf-8"><title>specpipe soak</title><h1>Soak</h1><pre>${esc(summaryText(log, s))}</pre>${svg}`;
}
