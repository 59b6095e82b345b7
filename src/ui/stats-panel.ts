// The live stats panel: rate, time between tokens, hit rate, tokens per step against the bound.
import type { StatsSnapshot } from '../app/live-stats.ts';

function fmt(v: number | null, digits: number, unit = ''): string {
  return v === null ? '–' : `${v.toFixed(digits)}${unit}`;
}

export function renderStats(root: HTMLElement, s: StatsSnapshot, extra: [string, string][] = []): void {
  const rows: [string, string][] = [
    ['tokens', String(s.tokens)],
    ['tokens/s', fmt(s.tokensPerSecond, 1)],
    ['between tokens (mean)', fmt(s.tbtMeanMs, 1, ' ms')],
    ['between tokens (last)', fmt(s.lastTbtMs, 1, ' ms')],
    ['between tokens p50 / p95', `${fmt(s.tbtP50Ms, 1)} / ${fmt(s.tbtP95Ms, 1)} ms`],
    ['hit rate', s.hitRate === null ? '–' : `${(s.hitRate * 100).toFixed(0)}% (${s.hits} hits, ${s.misses} misses)`],
    ['step (one level, one stage)', fmt(s.stepMs, 1, ' ms')],
    ['tokens per step / bound', `${fmt(s.tokensPerStep, 2)} / ${fmt(s.boundTokensPerStep, 2)}`],
    ...extra,
  ];
  root.replaceChildren(
    ...rows.flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      return [dt, dd];
    }),
  );
}
