// Helpers every engine uses to start and report a generation.
import type { LoadedModel } from '../model/index.ts';
import type { GenerateMetrics, StopReason } from '../speculative/scheduler.ts';
import { efficiency, tbtBound } from '../speculative/metrics.ts';
import { BadRequestError } from '../common/errors.ts';
import { MAX_OVERRUN_SHARE, emulating, overrunShare, type DeviceEmulation, type OverrunCount } from '../common/device-emulation.ts';
import type { EmulationReport, EngineInfo, GenerationReport, GenerationTimings, OverrunStats, RunBound } from './engine.ts';

/** The prompt as token ids: `prompt` through the model's tokenizer, or `promptIds`; checked against the vocabulary. */
export function promptIdsOf(model: LoadedModel, req: { prompt?: string; promptIds?: number[] }): number[] {
  let promptIds = req.promptIds ?? [];
  if (req.prompt !== undefined) {
    if (!model.tokenizer) throw new BadRequestError(`${model.source.description} has no tokenizer.json: give the prompt as token ids`);
    promptIds = model.tokenizer.encode(req.prompt);
  }
  if (promptIds.length === 0) throw new BadRequestError('the prompt is empty');
  const bad = promptIds.find((t) => !Number.isInteger(t) || t < 0 || t >= model.spec.vocabSize);
  if (bad !== undefined) throw new BadRequestError(`prompt id ${bad} is outside the vocabulary [0, ${model.spec.vocabSize})`);
  return promptIds;
}

/** A report's timings from the scheduler's metrics (tokens per second: the inverse of mean TBT). */
function timingsOf(m: GenerateMetrics, loadMs: number, generateMs: number): GenerationTimings {
  return {
    loadMs,
    generateMs,
    ttftMs: m.ttftMs,
    decodeMs: m.decodeMs,
    tbtMeanMs: m.tbtMeanMs,
    tbtP50Ms: m.tbtP50Ms,
    tbtP95Ms: m.tbtP95Ms,
    tokensPerSecond: m.tbtMeanMs ? 1000 / m.tbtMeanMs : null,
  };
}

/** The slowest stage's time per level (its median level), from each stage's report; null when none reported. */
export function bottleneckStepMs(levelMsP50: readonly (number | null)[]): number | null {
  const known = levelMsP50.filter((v): v is number => v !== null);
  return known.length ? Math.max(...known) : null;
}

/**
 * The mode's bound on mean TBT with stage time `stepMs` and one-way hop `hopMs`: SpecPipe's law for
 * specpipe (its hit rate; 0 without guesses gives R), the tree's for tree (tokens per round), R for
 * pp and single; with the run's efficiency against it.
 */
export function runBound(m: GenerateMetrics, stepMs: number | null, hopMs: number): RunBound | null {
  const b = tbtBound({
    stages: m.stages,
    stepMs,
    hopMs,
    hitRate: m.mode === 'specpipe' ? m.hitRate : null,
    tokensPerRound: m.mode === 'tree' && m.treeRounds > 0 ? m.tokensPerRound : null,
  });
  return b && { ...b, efficiency: efficiency(b, m.tbtMeanMs) };
}

function withShare(c: OverrunCount): OverrunStats {
  return { levels: c.levels, overruns: c.overruns, share: overrunShare([c]) };
}

/** The emulation's report: per-stage and draft overruns (counted only where a budget applied) and their share. */
function emulationReport(e: DeviceEmulation | null | undefined, stages: readonly OverrunCount[], draft: OverrunCount | null): EmulationReport | null {
  if (!emulating(e)) return null;
  const stageCounts = e.stageMs ? stages.map(withShare) : [];
  const draftCount = e.draftMs && draft && draft.levels > 0 ? withShare(draft) : null;
  const share = overrunShare([...stageCounts, ...(draftCount ? [draftCount] : [])]);
  return { stageMs: e.stageMs, draftMs: e.draftMs, overrunShare: share, stages: stageCounts, draft: draftCount, representative: share === null || share <= MAX_OVERRUN_SHARE };
}

/** What a report is built from: the run, where its stages are, and how each stage did. */
export interface ReportInputs {
  model: LoadedModel;
  info: Pick<EngineInfo, 'stages' | 'adapter' | 'weightBytes' | 'loadMs'>;
  promptIds: number[];
  tokens: number[];
  stopReason: StopReason;
  metrics: GenerateMetrics;
  generateMs: number;
  /** Each stage's work: busy time, levels, overruns, median level time. */
  stageStats: readonly (OverrunCount & { busyMs: number; levelMsP50: number | null })[];
  /** One-way hop time (0 with every stage in one tab). */
  hopMs: number;
  emulation: DeviceEmulation | null | undefined;
  draftCount: OverrunCount;
}

/** The report fields every engine fills the same way: text, timings, the bound, the emulation. */
export function generationReport(r: ReportInputs): GenerationReport {
  const emulated = emulationReport(r.emulation, r.stageStats, r.draftCount);
  return {
    tokens: r.tokens,
    text: r.model.tokenizer ? r.model.tokenizer.decode(r.tokens) : null,
    promptIds: r.promptIds,
    stopReason: r.stopReason,
    stages: r.info.stages,
    adapter: r.info.adapter,
    weightBytes: r.info.weightBytes,
    timings: timingsOf(r.metrics, r.info.loadMs, r.generateMs),
    metrics: r.metrics,
    bound: runBound(r.metrics, bottleneckStepMs(r.stageStats.map((s) => s.levelMsP50)), r.hopMs),
    emulation: emulated,
    overrunShare: emulated?.overrunShare ?? null,
    stageBusyMs: r.stageStats.map((s) => s.busyMs),
    warnings: r.model.warnings,
  };
}
