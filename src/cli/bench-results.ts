// `npm run bench` results: the JSON shape, the lossless check against single, the summary with
// one reference step per configuration, the table, the terminal progress bar and the
// self-contained HTML report (inline SVG charts). Pure: tested in Node.
// Metrics (src/speculative/metrics.ts): mean TBT = decode time / (tokens - 1), pooled over the
// prompts; speed-up = pp's mean TBT / the mode's, same configuration; tokens per step against pp's
// step in that configuration (mesh: pp's mean TBT / S; local: pp's time per level on its slowest
// stage); the bound on mean TBT from pp's stage time t and hop h; efficiency = bound / measured.
import { readFileSync } from 'node:fs';
import type { GenerationReport, EmulationReport } from '../app/engine.ts';
import type { MeshRunReport } from '../app/mesh-types.ts';
import type { GenerateMetrics, Mode } from '../speculative/scheduler.ts';
import { variantLabel, type ModeVariant } from '../app/modes.ts';
import { efficiency, pooledTbtMs, specpipeBound, tbtBound, tokensPerStep } from '../speculative/metrics.ts';
import { percentile } from '../common/numerics.ts';
import { MAX_OVERRUN_SHARE, costText, emulationText, overrunShare, type CostModel, type OverrunCount } from '../common/device-emulation.ts';
import { esc, rect, svgDoc, text } from '../ui/svg.ts';

export type Transport = 'local' | 'mesh';

/** A configuration and mode: how the stages were placed, the hop delay and the emulated costs. */
export interface BenchConfig extends ModeVariant {
  transport: Transport;
  stages: number;
  hopDelayMs: number;
  /** The emulated costs of this configuration (null: real compute). */
  stageMs: CostModel | null;
  draftMs: CostModel | null;
}


/** One generation of the bench, as measured. */
export interface BenchRecord extends BenchConfig {
  prompt: number;
  tokens: number[];
  metrics: GenerateMetrics;
  /** 1000 / mean TBT of this run. */
  tokensPerSecond: number | null;
  /** t: this run's slowest stage's time per level (median), ms. */
  stageStepMs: number | null;
  /** h: this run's one-way hop (half the mean ping round trip; 0 in one tab), ms. */
  hopMs: number;
  /** Busy (computing or padding) time per stage, ms. */
  stageBusyMs: number[];
  /** Emulated levels and draft calls, and how many overran (null without emulation). */
  overruns: OverrunCount | null;
  /** Mesh: ping round trip p50 of each hop (leader -> stage 1 -> ... -> leader), ms. */
  hopRttP50Ms?: (number | null)[];
  /** Mesh: a level's trip around the ring, p50 ms. */
  ringTripP50Ms?: number | null;
  /** Tokens equal `single`'s on the same prompt (null: no single run to compare with, or this is single). */
  lossless: boolean | null;
}

export interface BenchConditions {
  adapter: string;
  cpu: string;
  cores: number;
  /** How the stages were placed, in words (e.g. "all stages in one tab"). */
  placement: string;
  notes: string[];
}

export interface BenchResults {
  createdAt: string;
  conditions: BenchConditions;
  settings: { stages: number[]; modes: Mode[]; hopDelaysMs: number[]; stageMs: string[]; draftMs: string[]; tokens: number; widths: number[]; depths: number[]; branchRatio: number; draft: string; prompts: string[] };
  records: BenchRecord[];
  mismatches: string[];
  /** Configurations that could not run (e.g. a stage tab lost while the mesh formed). */
  failures: string[];
}

/** One configuration and mode, its runs (prompts) pooled. */
export interface SummaryRow extends BenchConfig {
  runs: number;
  tokens: number;
  /** Mean time between tokens: every run's decode time over every run's gaps (prompts pooled). */
  tbtMeanMs: number | null;
  tbtP50Ms: number | null;
  tbtP95Ms: number | null;
  /** 1000 / tbtMeanMs. */
  tokensPerSecond: number | null;
  hitRate: number | null;
  /** The configuration's reference step (pp's; single's own for single), and tokens per step against it. */
  stepMs: number | null;
  tokensPerStep: number | null;
  /** 1 / (p + (1-p) S) (pp: 1/S; null for tree, whose law is per round, and for single). */
  boundTokensPerStep: number | null;
  /** The least mean TBT the mode's law allows with the reference's t and h, and bound / measured. */
  boundTbtMs: number | null;
  efficiency: number | null;
  /** Fraction of the run each stage spent busy (mean over stages and runs). */
  busyFraction: number | null;
  /** Mesh: mean ping round trip of a hop, and a level's trip around the ring (p50), ms. */
  hopRttMs: number | null;
  ringTripMs: number | null;
  /** Share of emulated levels and draft calls whose real compute overran the budget (null without emulation). */
  overrunShare: number | null;
  /** pp's mean time between tokens / this mode's, same configuration. */
  speedupOverPp: number | null;
  /** specpipe: time stage 1 had credit but waited for the draft, per level sent (the draft on the critical path). */
  draftWaitMsPerLevel: number | null;
  /** specpipe: the best tree variant's mean TBT (lowest, same configuration) / this one's. */
  speedupOverTree: number | null;
  /** 'reference' for single; "ok/checked" runs equal to single; n/a when nothing was compared. */
  lossless: string;
  losslessFailures: number;
}

/** Prompts from a file: one a line; blank lines and # comments skipped. */
export function readPrompts(file: string): string[] {
  const prompts = readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (prompts.length === 0) throw new Error(`${file}: no prompts (one a line)`);
  return prompts;
}

type ReportLike = Pick<GenerationReport, 'tokens' | 'metrics' | 'timings' | 'bound' | 'emulation' | 'stageBusyMs'> & Partial<Pick<MeshRunReport, 'hops' | 'ringTripP50Ms'>>;

function overrunTotal(e: EmulationReport | null): OverrunCount | null {
  if (!e) return null;
  const parts = [...e.stages, ...(e.draft ? [e.draft] : [])];
  return { levels: parts.reduce((a, c) => a + c.levels, 0), overruns: parts.reduce((a, c) => a + c.overruns, 0) };
}

/** A generation's report (in one tab or on the mesh) as a bench record. */
export function benchRecord(r: ReportLike, where: BenchConfig & { prompt: number }): BenchRecord {
  return {
    ...where,
    tokens: r.tokens,
    metrics: r.metrics,
    tokensPerSecond: r.timings.tokensPerSecond,
    stageStepMs: r.bound?.stepMs ?? null,
    hopMs: r.bound?.hopMs ?? 0,
    stageBusyMs: r.stageBusyMs,
    overruns: overrunTotal(r.emulation),
    ...(r.hops ? { hopRttP50Ms: r.hops.map((h) => h.rttP50Ms), ringTripP50Ms: r.ringTripP50Ms ?? null } : {}),
    lossless: null,
  };
}

/**
 * Marks each record lossless or not against `single` on the same prompt; returns the mismatches.
 * Single itself is the reference (lossless null), as is any run without a single to compare with.
 */
export function checkLossless(records: BenchRecord[]): string[] {
  const reference = new Map<number, number[]>();
  for (const r of records) if (r.mode === 'single' && !reference.has(r.prompt)) reference.set(r.prompt, r.tokens);
  const bad: string[] = [];
  for (const r of records) {
    const ref = reference.get(r.prompt);
    if (!ref || r.mode === 'single') {
      r.lossless = null;
      continue;
    }
    const n = Math.min(ref.length, r.tokens.length);
    let first = r.tokens.length === ref.length ? -1 : n;
    for (let i = 0; i < n; i++) {
      if (r.tokens[i] !== ref[i]) {
        first = i;
        break;
      }
    }
    r.lossless = first === -1;
    if (first !== -1) bad.push(`${variantLabel(r)} x${r.stages} (${configText(r)}) prompt ${r.prompt + 1}: differs from single at token ${first}`);
  }
  return bad;
}

/** Runs compared with single (not single itself). */
export function comparedRuns(records: readonly BenchRecord[]): number {
  return records.filter((r) => r.lossless !== null).length;
}

function configText(r: BenchConfig): string {
  const emu = r.stageMs || r.draftMs ? `, stage ${costText(r.stageMs)} ms, draft ${costText(r.draftMs)} ms` : '';
  return `${r.transport}, hop ${r.hopDelayMs} ms${emu}`;
}

const mean = (xs: number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const present = (xs: (number | null)[]): number[] => xs.filter((x): x is number => x !== null);
const configKey = (r: BenchConfig): string => [r.transport, r.stages, r.hopDelayMs, costText(r.stageMs), costText(r.draftMs)].join('|');

/** The reference of a configuration, from its pp runs (or single's own, for the one-stage configuration). */
interface Reference {
  /** The step tokens per step count in. */
  stepMs: number | null;
  /** t and h for the bound. */
  stageStepMs: number | null;
  hopMs: number;
  tbtMeanMs: number | null;
}

function referenceOf(rs: BenchRecord[]): Reference {
  const tbt = pooledTbtMs(rs.map((r) => ({ decodeMs: r.metrics.decodeMs, tokens: r.tokens.length })));
  const stageStepMs = mean(present(rs.map((r) => r.stageStepMs)));
  const r0 = rs[0];
  // On the ring a pp step is its mean TBT over S (hops included); in one tab, its time per level.
  const stepMs = r0.transport === 'mesh' && r0.mode !== 'single' ? (tbt === null ? null : tbt / r0.stages) : stageStepMs;
  return { stepMs, stageStepMs, hopMs: mean(rs.map((r) => r.hopMs)) ?? 0, tbtMeanMs: tbt };
}

export function summarize(records: BenchRecord[]): SummaryRow[] {
  const groups = new Map<string, BenchRecord[]>();
  for (const r of records) {
    const key = `${configKey(r)}|${variantLabel(r)}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const references = new Map<string, Reference>();
  for (const rs of groups.values()) {
    if (rs[0].mode === 'pp' || rs[0].mode === 'single') references.set(configKey(rs[0]), referenceOf(rs));
  }
  const rows: SummaryRow[] = [];
  for (const rs of groups.values()) {
    const r0 = rs[0];
    const hits = rs.reduce((a, r) => a + r.metrics.hits, 0);
    const judged = hits + rs.reduce((a, r) => a + r.metrics.misses, 0);
    const speculative = r0.mode === 'specpipe' || r0.mode === 'tree';
    const p = speculative ? (judged ? hits / judged : null) : 0;
    const rounds = rs.reduce((a, r) => a + r.metrics.treeRounds, 0);
    const busy = rs.flatMap((r) => r.stageBusyMs.map((b) => (r.metrics.totalMs > 0 ? b / r.metrics.totalMs : 0)));
    const okCount = rs.filter((r) => r.lossless === true).length;
    const checked = rs.filter((r) => r.lossless !== null).length;
    const tbtMeanMs = pooledTbtMs(rs.map((r) => ({ decodeMs: r.metrics.decodeMs, tokens: r.tokens.length })));
    const ref = references.get(configKey(r0)) ?? null;
    const bound = ref
      ? tbtBound({
          stages: r0.stages,
          stepMs: ref.stageStepMs,
          hopMs: ref.hopMs,
          hitRate: r0.mode === 'specpipe' ? p : null,
          tokensPerRound: r0.mode === 'tree' && rounds > 0 ? rs.reduce((a, r) => a + r.metrics.committedTokens, 0) / rounds : null,
        })
      : null;
    const overruns = rs.flatMap((r) => (r.overruns ? [r.overruns] : []));
    rows.push({
      transport: r0.transport,
      stages: r0.stages,
      hopDelayMs: r0.hopDelayMs,
      stageMs: r0.stageMs,
      draftMs: r0.draftMs,
      mode: r0.mode,
      width: r0.width,
      depth: r0.depth,
      runs: rs.length,
      tokens: rs.reduce((a, r) => a + r.tokens.length, 0),
      tbtMeanMs,
      tbtP50Ms: percentile(present(rs.map((r) => r.metrics.tbtP50Ms)), 0.5),
      tbtP95Ms: percentile(present(rs.map((r) => r.metrics.tbtP95Ms)), 0.5),
      tokensPerSecond: tbtMeanMs ? 1000 / tbtMeanMs : null,
      hitRate: speculative ? p : null,
      stepMs: ref?.stepMs ?? null,
      tokensPerStep: tokensPerStep(ref?.stepMs ?? null, tbtMeanMs),
      boundTokensPerStep: p === null || r0.mode === 'tree' || r0.mode === 'single' ? null : specpipeBound(p, r0.stages).tokensPerStep,
      boundTbtMs: bound?.tbtMs ?? null,
      efficiency: efficiency(bound, tbtMeanMs),
      busyFraction: mean(busy),
      hopRttMs: mean(present(rs.flatMap((r) => r.hopRttP50Ms ?? []))),
      ringTripMs: mean(present(rs.map((r) => r.ringTripP50Ms ?? null))),
      overrunShare: overrunShare(overruns),
      speedupOverPp: null,
      speedupOverTree: null,
      draftWaitMsPerLevel: r0.mode === 'specpipe' ? rs.reduce((a, r) => a + r.metrics.draftWaitMs, 0) / Math.max(1, rs.reduce((a, r) => a + r.metrics.levelsSent, 0)) : null,
      lossless: r0.mode === 'single' ? 'reference' : checked === 0 ? 'n/a' : `${okCount}/${checked}`,
      losslessFailures: checked - okCount,
    });
  }
  for (const row of rows) {
    const pp = rows.find((r) => r.mode === 'pp' && configKey(r) === configKey(row));
    if (pp?.tbtMeanMs && row.tbtMeanMs && row.mode !== 'single') row.speedupOverPp = pp.tbtMeanMs / row.tbtMeanMs;
    const trees = present(rows.filter((r) => r.mode === 'tree' && configKey(r) === configKey(row)).map((r) => r.tbtMeanMs));
    if (row.mode === 'specpipe' && trees.length && row.tbtMeanMs) row.speedupOverTree = Math.min(...trees) / row.tbtMeanMs;
  }
  const order: Mode[] = ['single', 'pp', 'tree', 'specpipe'];
  const emu = (r: SummaryRow): string => `${costText(r.stageMs)}|${costText(r.draftMs)}`;
  return rows.sort(
    (a, b) =>
      a.transport.localeCompare(b.transport) || emu(a).localeCompare(emu(b)) || a.stages - b.stages || a.hopDelayMs - b.hopDelayMs || order.indexOf(a.mode) - order.indexOf(b.mode) ||
      (a.width ?? 0) - (b.width ?? 0) || (a.depth ?? 0) - (b.depth ?? 0),
  );
}

/** True when a row's emulated figures are not those of dedicated devices (too many overruns). */
export function overran(r: Pick<SummaryRow, 'overrunShare'>): boolean {
  return r.overrunShare !== null && r.overrunShare > MAX_OVERRUN_SHARE;
}

const f = (v: number | null, d: number): string => (v === null ? '-' : v.toFixed(d));
const pct = (v: number | null): string => (v === null ? '-' : `${(v * 100).toFixed(0)}%`);

export const TABLE_HEADER = ['transport', 'stages', 'hop ms', 'stage ms', 'draft ms', 'mode', 'tokens', 'TBT mean ms', 'TBT p50 ms', 'TBT p95 ms', 'tok/s', 'hit rate', 'step ms', 'tok/step', 'bound', 'bound TBT ms', 'efficiency', 'stage busy', 'hop rtt ms', 'overruns', 'draft wait ms', 'vs pp', 'vs best tree', 'lossless'];

export function tableCells(r: SummaryRow): string[] {
  return [
    r.transport, String(r.stages), String(r.hopDelayMs), costText(r.stageMs), costText(r.draftMs), variantLabel(r), String(r.tokens),
    f(r.tbtMeanMs, 1), f(r.tbtP50Ms, 1), f(r.tbtP95Ms, 1), f(r.tokensPerSecond, 1), pct(r.hitRate), f(r.stepMs, 1), f(r.tokensPerStep, 2), f(r.boundTokensPerStep, 2),
    f(r.boundTbtMs, 1), pct(r.efficiency), pct(r.busyFraction), f(r.hopRttMs, 1), r.overrunShare === null ? '-' : `${pct(r.overrunShare)}${overran(r) ? ' !' : ''}`, f(r.draftWaitMsPerLevel, 1),
    r.speedupOverPp === null ? '-' : `${r.speedupOverPp.toFixed(2)}x`, r.speedupOverTree === null ? '-' : `${r.speedupOverTree.toFixed(2)}x`, r.lossless,
  ];
}

/** A fixed-width text table (also valid Markdown). */
export function formatTable(rows: SummaryRow[]): string {
  const cells = [TABLE_HEADER, ...rows.map(tableCells)];
  const widths = TABLE_HEADER.map((_, c) => Math.max(...cells.map((r) => r[c].length)));
  const line = (r: string[]): string => `| ${r.map((v, c) => v.padEnd(widths[c])).join(' | ')} |`;
  return [line(cells[0]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.slice(1).map(line)].join('\n');
}

/** How to read the table, printed under it (and in the HTML report). */
export const TABLE_LEGEND =
  'TBT mean: decode time (first token to last) / (tokens - 1), prompts pooled; tok/s = 1000 / TBT mean. ' +
  'step ms: the configuration\'s reference step, pp\'s in the same run (mesh: pp\'s TBT mean / S, hops included; one tab: pp\'s time per level on its slowest stage); single is its own reference. ' +
  'mode: specpipe W (node budget per step, speculating up to S deep), tree W D (static tree width and depth). ' +
  'tok/step: step ms / TBT mean, so a mode whose steps got slower shows it; bound: 1/(p + (1-p) S) (pp 1/S; none for tree, whose law is per round). ' +
  'bound TBT: the least mean TBT the mode\'s law allows with pp\'s stage time t per level and one-way hop h, R = S t + (S+1) h: specpipe p t + (1-p) R, pp R, tree R / tokens per round; efficiency = bound TBT / TBT mean. ' +
  `overruns: emulated levels and draft calls whose real compute exceeded the budget; "!" above ${MAX_OVERRUN_SHARE * 100}%: the row describes this shared machine, not dedicated devices. ` +
  'draft wait: specpipe\'s time per level with stage 1 ready and the draft not (the draft on the critical path; it proposes each level while the previous one is in flight). ' +
  'vs pp: pp\'s TBT mean / this mode\'s, same configuration and run; vs best tree: the fastest tree variant\'s TBT mean / specpipe\'s. lossless: runs whose tokens equal single\'s on the same prompt (single is the reference).';

export function conditionsText(c: BenchConditions): string {
  return [`adapter: ${c.adapter}`, `CPU: ${c.cpu} (${c.cores} cores)`, `placement: ${c.placement}`, ...c.notes].join('\n');
}

/** `[#####.....]  12/36 label` */
export function progressBar(done: number, total: number, label = '', width = 30): string {
  const filled = total > 0 ? Math.round((done / total) * width) : width;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(done).padStart(String(total).length)}/${total} ${label}`;
}

const MODE_COLORS: Record<Mode, string> = { single: '#9c9c9c', pp: '#e15759', tree: '#f28e2b', specpipe: '#4e79a7' };
/** A series' colour: its mode's, lighter for each further variant of the mode. */
function seriesColor(label: string, series: readonly string[]): string {
  const mode = label.split(' ')[0] as Mode;
  const rank = series.filter((s) => s.split(' ')[0] === mode).indexOf(label);
  return `color-mix(in srgb, ${MODE_COLORS[mode] ?? '#777'} ${100 - Math.min(rank, 3) * 22}%, white)`;
}

/** Grouped bars: one group per x label, one bar per series; optional tick marks (e.g. a bound). */
export function barChart(o: {
  title: string;
  groups: string[];
  series: string[];
  value: (group: string, series: string) => number | null;
  mark?: (group: string, series: string) => number | null;
  yLabel: string;
}): string {
  const W = 560;
  const H = 260;
  const left = 52;
  const top = 28;
  const bottom = 48;
  const plotH = H - top - bottom;
  const all = o.groups.flatMap((g) => o.series.flatMap((s) => [o.value(g, s), o.mark?.(g, s) ?? null])).filter((v): v is number => v !== null && Number.isFinite(v));
  const max = Math.max(1e-9, ...all) * 1.1;
  const y = (v: number): number => top + plotH - (v / max) * plotH;
  const groupW = (W - left - 10) / Math.max(1, o.groups.length);
  const barW = Math.min(28, (groupW - 12) / Math.max(1, o.series.length));
  let body = text(left, 16, o.title, 'font-weight="bold" font-size="13"');
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    body += `<line x1="${left}" x2="${W - 10}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>` + text(left - 4, y(v) + 4, v < 10 ? v.toFixed(2) : v.toFixed(0), 'text-anchor="end" fill="#666"');
  }
  body += text(12, top + plotH / 2, o.yLabel, `transform="rotate(-90 12 ${top + plotH / 2})" text-anchor="middle" fill="#444"`);
  o.groups.forEach((g, gi) => {
    const x0 = left + gi * groupW + (groupW - barW * o.series.length) / 2;
    o.series.forEach((s, si) => {
      const v = o.value(g, s);
      const x = x0 + si * barW;
      if (v !== null && Number.isFinite(v)) {
        body += rect(x + 1, y(v), barW - 2, top + plotH - y(v), seriesColor(s, o.series)).replace('/>', `><title>${esc(`${s} ${g}: ${v.toFixed(3)}`)}</title></rect>`);
      }
      const m = o.mark?.(g, s) ?? null;
      if (m !== null && Number.isFinite(m)) body += `<line x1="${x}" x2="${x + barW}" y1="${y(m)}" y2="${y(m)}" stroke="#000" stroke-width="2" stroke-dasharray="3 2"><title>bound ${m.toFixed(3)}</title></line>`;
    });
    body += text(left + gi * groupW + groupW / 2, top + plotH + 16, g, 'text-anchor="middle"');
  });
  o.series.forEach((s, i) => {
    body += rect(left + i * 90, H - 18, 10, 10, seriesColor(s, o.series)) + text(left + i * 90 + 14, H - 9, s);
  });
  if (o.mark) body += `<line x1="${left + o.series.length * 90}" x2="${left + o.series.length * 90 + 16}" y1="${H - 13}" y2="${H - 13}" stroke="#000" stroke-width="2" stroke-dasharray="3 2"/>` + text(left + o.series.length * 90 + 20, H - 9, 'bound');
  return svgDoc(W, H, body, o.title);
}

/** The three charts of the report, for one configuration family (transport, hop delay, emulation). */
export function charts(rows: SummaryRow[], family: string): string[] {
  const members = rows.filter((r) => r.mode !== 'single' && familyOf(r) === family);
  // single (one stage, no hops) is drawn beside every family of its transport and emulation.
  const sameEmulation = (r: SummaryRow): boolean => members.some((m) => m.transport === r.transport && costText(m.stageMs) === costText(r.stageMs) && costText(m.draftMs) === costText(r.draftMs));
  const here = [...members, ...rows.filter((r) => r.mode === 'single' && sameEmulation(r))];
  const stageCounts = [...new Set(here.filter((r) => r.mode !== 'single').map((r) => r.stages))].sort((a, b) => a - b);
  const groups = stageCounts.map((s) => `${s} stages`);
  const modes = [...new Set(here.map(variantLabel))];
  const row = (g: string, m: string): SummaryRow | undefined => here.find((r) => variantLabel(r) === m && (m === 'single' || `${r.stages} stages` === g));
  const spec = modes.filter((m) => m !== 'single');
  const suffix = `, ${family}`;
  return [
    barChart({ title: `Time between tokens, mean (ms)${suffix}`, groups, series: modes, value: (g, m) => row(g, m)?.tbtMeanMs ?? null, yLabel: 'ms' }),
    barChart({ title: `Speed-up over pp vs the bound${suffix}`, groups, series: spec, value: (g, m) => row(g, m)?.speedupOverPp ?? null, mark: (g, m) => boundSpeedup(row(g, m), row(g, 'pp')), yLabel: 'x over pp' }),
    barChart({ title: `Hit rate${suffix}`, groups, series: spec.filter((m) => m !== 'pp'), value: (g, m) => row(g, m)?.hitRate ?? null, yLabel: 'p' }),
  ];
}

/** The speed-up over pp the mode's bound allows: pp's TBT / the mode's bound TBT. */
function boundSpeedup(r: SummaryRow | undefined, pp: SummaryRow | undefined): number | null {
  return r?.boundTbtMs && pp?.tbtMeanMs ? pp.tbtMeanMs / r.boundTbtMs : null;
}

/** A configuration family in words: transport, hop delay and the emulated costs. */
function familyOf(r: SummaryRow): string {
  const emu = r.stageMs || r.draftMs ? `stage ${costText(r.stageMs)} ms, draft ${costText(r.draftMs)} ms` : 'no emulation';
  return r.transport === 'mesh' ? `mesh, hop delay ${r.hopDelayMs} ms, ${emu}` : `local stages, ${emu}`;
}

export function htmlReport(res: BenchResults): string {
  const rows = summarize(res.records);
  const families = [...new Set(rows.filter((r) => r.mode !== 'single').map(familyOf))];
  const sections = families.map((fam) => `<div class="charts">${charts(rows, fam).join('\n')}</div>`);
  const table = `<table><thead><tr>${TABLE_HEADER.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr${r.losslessFailures > 0 ? ' class="bad"' : overran(r) ? ' class="warn"' : ''}>${tableCells(r).map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
  const compared = comparedRuns(res.records);
  const mismatch = res.mismatches.length
    ? `<div class="bad"><b>LOSSLESS CHECK FAILED</b> (a mode's tokens differ from single):<ul>${res.mismatches.map((m) => `<li>${esc(m)}</li>`).join('')}</ul></div>`
    : compared === 0
      ? `<div class="bad"><b>NOTHING WAS COMPARED</b> with single: no run of another mode finished next to a single run.</div>`
      : `<p class="ok">Lossless: all ${compared} runs of other modes produced exactly the tokens of <code>single</code> on the same prompt.</p>`;
  const failed = res.failures.length
    ? `<div class="bad"><b>${res.failures.length} configuration(s) failed</b> (no numbers for them):<ul>${res.failures.map((m) => `<li>${esc(m)}</li>`).join('')}</ul></div>`
    : '';
  const flagged = rows.some(overran)
    ? `<div class="warn">Rows marked "!" overran their emulated budgets on more than ${MAX_OVERRUN_SHARE * 100}% of levels: they describe this shared machine, not dedicated devices.</div>`
    : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>SpecPipe bench ${esc(res.createdAt)}</title>
<style>body{font-family:system-ui,sans-serif;margin:16px;color:#1d1f23}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}th{background:#f3f4f6}.bad{color:#8a1c1c;background:#fdecea}.warn{background:#fff6dc}.ok{color:#1d6b2c}.charts{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}pre{background:#f6f7f9;padding:8px;white-space:pre-wrap}</style></head><body>
<h1>SpecPipe bench</h1>
<p>${esc(res.createdAt)} · ${res.settings.prompts.length} prompts · ${res.settings.tokens} new tokens each · W ${res.settings.widths.join(', ')} · tree depth ${res.settings.depths.join(', ')} · branch ratio ${res.settings.branchRatio} · draft ${esc(res.settings.draft)}</p>
<h2>Conditions</h2><pre>${esc(conditionsText(res.conditions))}</pre>
${mismatch}
${failed}
${flagged}
<h2>Results</h2>${table}
<p>${esc(TABLE_LEGEND)}</p>
<h2>Charts</h2>${sections.join('\n')}
<h2>Prompts</h2><ol>${res.settings.prompts.map((p) => `<li>${esc(p)}</li>`).join('')}</ol>
</body></html>`;
}
