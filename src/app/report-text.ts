// A generation report's conditions and bound in words, printed next to its numbers by the command
// line (generate, demo) and the chat page. Pure: tested in Node.
import { MAX_OVERRUN_SHARE, emulationText } from '../common/device-emulation.ts';
import type { EmulationReport, RunBound } from './engine.ts';

const pct = (v: number): string => `${(v * 100).toFixed(0)}%`;

/** 'no emulation ...' or the emulated costs with the overrun share, flagged above 5%. */
export function emulationLine(e: EmulationReport | null): string {
  if (!e) return emulationText(null);
  const parts = [...e.stages.map((s, i) => (s.share === null ? null : `stage ${i + 1} ${pct(s.share)}`)), e.draft?.share != null ? `draft ${pct(e.draft.share)}` : null].filter((p) => p !== null);
  const share = e.overrunShare === null ? 'no level ran' : `overruns ${pct(e.overrunShare)}${parts.length ? ` (${parts.join(', ')})` : ''}`;
  const flag = e.representative ? '' : `; MORE THAN ${pct(MAX_OVERRUN_SHARE)} OVERRAN: these figures describe this shared machine, not dedicated devices`;
  return `${emulationText(e)}; ${share}${flag}`;
}

/** The bound next to the measured mean TBT: its law, inputs, and the efficiency. */
export function boundLine(b: RunBound | null, tbtMeanMs: number | null): string {
  if (!b) return 'bound: not measured';
  const f = (v: number): string => v.toFixed(1);
  const law = b.law === 'specpipe' ? `p t + (1-p) R, p ${b.hitRate!.toFixed(2)}` : b.law === 'tree' ? `R / ${b.tokensPerRound!.toFixed(2)} tokens per round` : 'R';
  const measured = tbtMeanMs === null ? '-' : f(tbtMeanMs);
  return (
    `mean TBT ${measured} ms, bound ${f(b.tbtMs)} ms (${b.law}: ${law}; t ${f(b.stepMs)} ms per level, h ${f(b.hopMs)} ms, S ${b.stages}, R ${f(b.roundTripMs)} ms), ` +
    `efficiency ${b.efficiency === null ? '-' : pct(b.efficiency)}`
  );
}
