// `npm run bench` results: the JSON shape, the lossless check, the summary table, the terminal
// progress bar and the self-contained HTML report (inline SVG charts). Pure: tested in Node.
import { readFileSync } from 'node:fs';
import type { BenchRun } from '../headless/bench-run.ts';
import type { MeshRunReport } from '../app/mesh-session.ts';
import { isSpeculative } from '../app/modes.ts';
import type { Mode } from '../speculative/scheduler.ts';
import { specpipeBound } from '../speculative/scheduler.ts';
import { percentile } from '../common/numerics.ts';
import { esc, rect, svgDoc, text } from '../ui/svg.ts';

export type Transport = 'local' | 'mesh';

export interface BenchRecord extends BenchRun {
  transport: Transport;
  hopDelayMs: number;
  /** Mesh: ping round trip p50 of each hop (leader -> stage 1 -> ... -> leader), ms. */
  hopRttP50Ms?: (number | null)[];
  /** Mesh: a level's trip around the ring, p50 ms. */
  ringTripP50Ms?: number | null;
  /** Tokens equal `single`'s on the same prompt (null: no single run to compare with). */
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
  settings: { stages: number[]; modes: Mode[]; hopDelaysMs: number[]; tokens: number; width: number; depth: number; draft: string; prompts: string[] };
  records: BenchRecord[];
  mismatches: string[];
  /** Configurations that could not run (e.g. a stage tab lost while the mesh formed). */
  failures: string[];
}

export interface SummaryRow {
  transport: Transport;
  stages: number;
  hopDelayMs: number;
  mode: Mode;
  runs: number;
  tokens: number;
  /** Mean time between tokens (1 / decode rate): speculative modes commit in bursts, so p50 alone misleads. */
  tbtMeanMs: number | null;
  tbtP50Ms: number | null;
  tbtP95Ms: number | null;
  tokensPerSecond: number | null;
  hitRate: number | null;
  tokensPerStep: number | null;
  boundTokensPerStep: number | null;
  stepMs: number | null;
  /** Fraction of the run each stage spent computing (mean over stages and runs). */
  busyFraction: number | null;
  /** Mesh: mean ping round trip of a hop, and a level's trip around the ring (p50), ms. */
  hopRttMs: number | null;
  ringTripMs: number | null;
  /** pp's mean time between tokens / this mode's, same transport, stages and hop delay. */
  speedupOverPp: number | null;
  /** "ok/checked" runs equal to single, or n/a. */
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

/**
 * A mesh generation as a bench run. The step is the scheduler's (Pipeline.stepTimeMs): a level's
 * trip around the ring over S, hops included, so PP sits at 1/S tokens per step by construction.
 */
export function meshRun(r: MeshRunReport, mode: Mode, stages: number, prompt: number): Omit<BenchRecord, 'transport' | 'hopDelayMs' | 'lossless'> {
  const stepMs = r.ringTripP50Ms !== null ? r.ringTripP50Ms / stages : null;
  const tps = r.timings.tokensPerSecond;
  return {
    mode,
    stages,
    prompt,
    tokens: r.tokens,
    metrics: r.metrics,
    tokensPerSecond: tps,
    stepMs,
    tokensPerStep: r.metrics.tokensPerStep ?? (tps !== null && stepMs !== null ? (tps * stepMs) / 1000 : null),
    stageBusyMs: r.stageStats.map((s) => s.busyMs),
    hopRttP50Ms: r.hops.map((h) => h.rttP50Ms),
    ringTripP50Ms: r.ringTripP50Ms,
  };
}

/** Marks each record lossless or not against `single` on the same prompt; returns the mismatches. */
export function checkLossless(records: BenchRecord[]): string[] {
  const reference = new Map(records.filter((r) => r.mode === 'single').map((r) => [r.prompt, r.tokens]));
  const bad: string[] = [];
  for (const r of records) {
    const ref = reference.get(r.prompt);
    if (!ref || r.mode === 'single') {
      r.lossless = ref ? true : null;
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
    if (first !== -1) bad.push(`${r.mode} x${r.stages} (${r.transport}, hop ${r.hopDelayMs} ms) prompt ${r.prompt + 1}: differs from single at token ${first}`);
  }
  return bad;
}

const mean = (xs: number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const present = (xs: (number | null)[]): number[] => xs.filter((x): x is number => x !== null);

export function summarize(records: BenchRecord[]): SummaryRow[] {
  const groups = new Map<string, BenchRecord[]>();
  for (const r of records) {
    const key = [r.transport, r.stages, r.hopDelayMs, r.mode].join('|');
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const rows: SummaryRow[] = [];
  for (const rs of groups.values()) {
    const r0 = rs[0];
    const hits = rs.reduce((a, r) => a + r.metrics.hits, 0);
    const judged = hits + rs.reduce((a, r) => a + r.metrics.misses, 0);
    const speculative = isSpeculative(r0.mode);
    const p = speculative ? (judged ? hits / judged : null) : 0;
    const busy = rs.flatMap((r) => r.stageBusyMs.map((b) => (r.metrics.totalMs > 0 ? b / r.metrics.totalMs : 0)));
    const okCount = rs.filter((r) => r.lossless === true).length;
    const checked = rs.filter((r) => r.lossless !== null).length;
    rows.push({
      transport: r0.transport,
      stages: r0.stages,
      hopDelayMs: r0.hopDelayMs,
      mode: r0.mode,
      runs: rs.length,
      tokens: rs.reduce((a, r) => a + r.tokens.length, 0),
      tbtMeanMs: mean(present(rs.map((r) => (r.tokensPerSecond ? 1000 / r.tokensPerSecond : null)))),
      tbtP50Ms: percentile(present(rs.map((r) => r.metrics.tbtP50Ms)), 0.5),
      tbtP95Ms: percentile(present(rs.map((r) => r.metrics.tbtP95Ms)), 0.5),
      tokensPerSecond: mean(present(rs.map((r) => r.tokensPerSecond))),
      hitRate: speculative ? p : null,
      tokensPerStep: mean(present(rs.map((r) => r.tokensPerStep))),
      boundTokensPerStep: p === null ? null : specpipeBound(p, r0.stages).tokensPerStep,
      stepMs: mean(present(rs.map((r) => r.stepMs))),
      busyFraction: mean(busy),
      hopRttMs: mean(present(rs.flatMap((r) => r.hopRttP50Ms ?? []))),
      ringTripMs: mean(present(rs.map((r) => r.ringTripP50Ms ?? null))),
      speedupOverPp: null,
      lossless: checked === 0 ? 'n/a' : `${okCount}/${checked}`,
      losslessFailures: checked - okCount,
    });
  }
  for (const row of rows) {
    const pp = rows.find((r) => r.mode === 'pp' && r.transport === row.transport && r.stages === row.stages && r.hopDelayMs === row.hopDelayMs);
    if (pp?.tbtMeanMs && row.tbtMeanMs) row.speedupOverPp = pp.tbtMeanMs / row.tbtMeanMs;
  }
  const order: Mode[] = ['single', 'pp', 'tree', 'specpipe'];
  return rows.sort((a, b) => a.transport.localeCompare(b.transport) || a.stages - b.stages || a.hopDelayMs - b.hopDelayMs || order.indexOf(a.mode) - order.indexOf(b.mode));
}

const f = (v: number | null, d: number): string => (v === null ? '-' : v.toFixed(d));
const pct = (v: number | null): string => (v === null ? '-' : `${(v * 100).toFixed(0)}%`);

export const TABLE_HEADER = ['transport', 'stages', 'hop ms', 'mode', 'tokens', 'TBT mean ms', 'TBT p50 ms', 'TBT p95 ms', 'tok/s', 'hit rate', 'tok/step', 'bound', 'step ms', 'stage busy', 'hop rtt ms', 'ring trip ms', 'vs pp', 'lossless'];

export function tableCells(r: SummaryRow): string[] {
  return [r.transport, String(r.stages), String(r.hopDelayMs), r.mode, String(r.tokens), f(r.tbtMeanMs, 1), f(r.tbtP50Ms, 1), f(r.tbtP95Ms, 1), f(r.tokensPerSecond, 1), pct(r.hitRate), f(r.tokensPerStep, 2), f(r.boundTokensPerStep, 2), f(r.stepMs, 1), pct(r.busyFraction), f(r.hopRttMs, 1), f(r.ringTripMs, 1), r.speedupOverPp === null ? '-' : `${r.speedupOverPp.toFixed(2)}x`, r.lossless];
}

/** A fixed-width text table (also valid Markdown). */
export function formatTable(rows: SummaryRow[]): string {
  const cells = [TABLE_HEADER, ...rows.map(tableCells)];
  const widths = TABLE_HEADER.map((_, c) => Math.max(...cells.map((r) => r[c].length)));
  const line = (r: string[]): string => `| ${r.map((v, c) => v.padEnd(widths[c])).join(' | ')} |`;
  return [line(cells[0]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.slice(1).map(line)].join('\n');
}

export function conditionsText(c: BenchConditions): string {
  return [`adapter: ${c.adapter}`, `CPU: ${c.cpu} (${c.cores} cores)`, `placement: ${c.placement}`, ...c.notes].join('\n');
}

/** `[#####.....]  12/36 label` */
export function progressBar(done: number, total: number, label = '', width = 30): string {
  const filled = total > 0 ? Math.round((done / total) * width) : width;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(done).padStart(String(total).length)}/${total} ${label}`;
}

const MODE_COLORS: Record<Mode, string> = { single: '#9c9c9c', pp: '#e15759', tree: '#f28e2b', specpipe: '#4e79a7' };

/** Grouped bars: one group per x label, one bar per series; optional tick marks (e.g. a bound). */
export function barChart(o: {
  title: string;
  groups: string[];
  series: Mode[];
  value: (group: string, series: Mode) => number | null;
  mark?: (group: string, series: Mode) => number | null;
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
        body += rect(x + 1, y(v), barW - 2, top + plotH - y(v), MODE_COLORS[s]).replace('/>', `><title>${esc(`${s} ${g}: ${v.toFixed(3)}`)}</title></rect>`);
      }
      const m = o.mark?.(g, s) ?? null;
      if (m !== null && Number.isFinite(m)) body += `<line x1="${x}" x2="${x + barW}" y1="${y(m)}" y2="${y(m)}" stroke="#000" stroke-width="2" stroke-dasharray="3 2"><title>bound ${m.toFixed(3)}</title></line>`;
    });
    body += text(left + gi * groupW + groupW / 2, top + plotH + 16, g, 'text-anchor="middle"');
  });
  o.series.forEach((s, i) => {
    body += rect(left + i * 90, H - 18, 10, 10, MODE_COLORS[s]) + text(left + i * 90 + 14, H - 9, s);
  });
  if (o.mark) body += `<line x1="${left + o.series.length * 90}" x2="${left + o.series.length * 90 + 16}" y1="${H - 13}" y2="${H - 13}" stroke="#000" stroke-width="2" stroke-dasharray="3 2"/>` + text(left + o.series.length * 90 + 20, H - 9, 'bound');
  return svgDoc(W, H, body, o.title);
}

/** The three charts of the report, for one transport and hop delay. */
export function charts(rows: SummaryRow[], transport: Transport, hopDelayMs: number): string[] {
  const here = rows.filter((r) => r.transport === transport && (r.hopDelayMs === hopDelayMs || r.mode === 'single'));
  const stageCounts = [...new Set(here.filter((r) => r.mode !== 'single').map((r) => r.stages))].sort((a, b) => a - b);
  const groups = stageCounts.map((s) => `${s} stages`);
  const modes = (['single', 'pp', 'tree', 'specpipe'] as Mode[]).filter((m) => here.some((r) => r.mode === m));
  const row = (g: string, m: Mode): SummaryRow | undefined => here.find((r) => r.mode === m && (m === 'single' || `${r.stages} stages` === g));
  const spec = modes.filter((m) => m !== 'single');
  const suffix = transport === 'mesh' ? `, hop delay ${hopDelayMs} ms` : ' (local stages)';
  return [
    barChart({ title: `Time between tokens, mean (ms)${suffix}`, groups, series: modes, value: (g, m) => row(g, m)?.tbtMeanMs ?? null, yLabel: 'ms' }),
    barChart({ title: `Tokens per pipeline step vs the bound${suffix}`, groups, series: spec, value: (g, m) => row(g, m)?.tokensPerStep ?? null, mark: (g, m) => (m === 'tree' ? null : (row(g, m)?.boundTokensPerStep ?? null)), yLabel: 'tokens / step' }),
    barChart({ title: `Hit rate${suffix}`, groups, series: spec.filter((m) => m !== 'pp'), value: (g, m) => row(g, m)?.hitRate ?? null, yLabel: 'p' }),
  ];
}

export function htmlReport(res: BenchResults): string {
  const rows = summarize(res.records);
  const sections = [...new Set(rows.map((r) => `${r.transport}|${r.hopDelayMs}`))]
    .map((k) => k.split('|'))
    .filter(([t, h]) => rows.some((r) => r.transport === t && String(r.hopDelayMs) === h && r.mode !== 'single'))
    .map(([t, h]) => `<div class="charts">${charts(rows, t as Transport, Number(h)).join('\n')}</div>`);
  const table = `<table><thead><tr>${TABLE_HEADER.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr${r.losslessFailures > 0 ? ' class="bad"' : ''}>${tableCells(r).map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
  const mismatch = res.mismatches.length
    ? `<div class="bad"><b>LOSSLESS CHECK FAILED</b> (a mode's tokens differ from single):<ul>${res.mismatches.map((m) => `<li>${esc(m)}</li>`).join('')}</ul></div>`
    : `<p class="ok">Lossless: every mode produced exactly the tokens of <code>single</code> on every prompt.</p>`;
  const failed = res.failures.length
    ? `<div class="bad"><b>${res.failures.length} configuration(s) failed</b> (no numbers for them):<ul>${res.failures.map((m) => `<li>${esc(m)}</li>`).join('')}</ul></div>`
    : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>SpecPipe bench ${esc(res.createdAt)}</title>
<style>body{font-family:system-ui,sans-serif;margin:16px;color:#1d1f23}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 6px;text-align:right}th{background:#f3f4f6}.bad{color:#8a1c1c;background:#fdecea}.ok{color:#1d6b2c}.charts{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}pre{background:#f6f7f9;padding:8px;white-space:pre-wrap}</style></head><body>
<h1>SpecPipe bench</h1>
<p>${esc(res.createdAt)} · ${res.settings.prompts.length} prompts · ${res.settings.tokens} new tokens each · W=${res.settings.width} · depth ${res.settings.depth} · draft ${esc(res.settings.draft)}</p>
<h2>Conditions</h2><pre>${esc(conditionsText(res.conditions))}</pre>
${mismatch}
${failed}
<h2>Results</h2>${table}
<p>TBT: time between consecutive tokens: mean = 1 / decode rate; p50/p95 = median over prompts of each run's percentiles (speculative modes commit several tokens at once, so their p50 can be near 0). tok/step: tokens per pipeline step; on the mesh a step is a level's trip leader → stages → leader divided by S (hops included, so pp sits at 1/S), with stages in one tab the mean compute of one level on one stage; bound: 1/(p + (1−p)·S) for the measured hit rate p (SpecPipe's; pp has p = 0; not drawn for tree, whose rounds follow another law). stage busy: fraction of the run a stage spent computing (the rest is waiting: network, other tabs, the leader). hop rtt: ping round trip of one ring hop (mesh); ring trip: a level's way leader → stages → leader. vs pp: pp's mean TBT / this mode's.</p>
<h2>Charts</h2>${sections.join('\n')}
<h2>Prompts</h2><ol>${res.settings.prompts.map((p) => `<li>${esc(p)}</li>`).join('')}</ol>
</body></html>`;
}
