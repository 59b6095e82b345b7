// Page side of `npm run bench` with local stages: every mode on every prompt, one model load per
// stage count (single: its own one-stage engine). The mesh variant runs over MeshSession instead.
import { openEngine, type LocalEngine } from '../app/local-engine.ts';
import { isSpeculative, treeShape, type DraftKind } from '../app/modes.ts';
import { LiveStats } from '../app/live-stats.ts';
import { reservedSlots, type GenerateMetrics, type Mode } from '../speculative/scheduler.ts';
import type { SamplingSettings } from '../speculative/sampling.ts';

export interface BenchRequest {
  modelUrl: string;
  draftUrl: string;
  draft: DraftKind;
  /** Target stages in this tab; ignored by `single`, which always runs one stage. */
  stages: number;
  modes: Mode[];
  prompts: string[];
  tokens: number;
  width: number;
  depth: number;
  sampling: SamplingSettings;
}

export interface BenchRun {
  mode: Mode;
  stages: number;
  prompt: number;
  tokens: number[];
  metrics: GenerateMetrics;
  /** Decode rate after the first token. */
  tokensPerSecond: number | null;
  /** Mean compute time of one level on one stage (the pipeline step). */
  stepMs: number | null;
  /** Measured tokens per step (decode rate x step time); compare with metrics.boundTokensPerStep. */
  tokensPerStep: number | null;
  /** Busy (computing) time per stage, ms. */
  stageBusyMs: number[];
}

export interface BenchPageResult {
  adapter: string;
  stages: string[];
  runs: BenchRun[];
}

declare global {
  interface Window {
    __specpipeBenchProgress?: (label: string) => void;
  }
}

async function runAll(engine: LocalEngine, req: BenchRequest, modes: Mode[], out: BenchRun[]): Promise<void> {
  const tokenizer = engine.model.tokenizer;
  if (!tokenizer) throw new Error(`${req.modelUrl} has no tokenizer.json`);
  for (const mode of modes) {
    for (const [i, text] of req.prompts.entries()) {
      const speculative = isSpeculative(mode);
      const live = new LiveStats(engine.numStages, speculative);
      const r = await engine.run({
        mode,
        prompt: tokenizer.encode(text),
        maxNewTokens: req.tokens,
        eosTokens: engine.model.spec.eosTokenIds,
        sampling: req.sampling,
        draft: speculative ? req.draft : 'none',
        ...treeShape(req.width, req.depth),
        onToken: (_t, _i, hit) => live.token(performance.now(), hit),
        onPacket: (_s, p) => live.packet(p),
      });
      const snap = live.snapshot();
      out.push({
        mode,
        stages: engine.numStages,
        prompt: i,
        tokens: r.tokens,
        metrics: r.metrics,
        tokensPerSecond: snap.tokensPerSecond,
        stepMs: snap.stepMs,
        tokensPerStep: snap.tokensPerStep,
        stageBusyMs: r.stageBusyMs,
      });
      window.__specpipeBenchProgress?.(`${mode} x${engine.numStages} prompt ${i + 1}`);
    }
  }
}

export async function benchLocal(req: BenchRequest): Promise<BenchPageResult> {
  const runs: BenchRun[] = [];
  const reserve = Math.max(...req.modes.map((m) => reservedSlots(m, req.stages, treeShape(req.width, req.depth))));
  const numSlots = (spec: { maxPositions: number }): number => spec.maxPositions + reserve;
  const groups: [number, Mode[]][] = [
    [1, req.modes.filter((m) => m === 'single')],
    [req.stages, req.modes.filter((m) => m !== 'single')],
  ];
  let stages: string[] = [];
  let adapter = '';
  for (const [count, modes] of groups) {
    if (modes.length === 0) continue;
    const needsDraft = req.draft === 'model' && modes.some((m) => isSpeculative(m));
    const engine = await openEngine({ modelUrl: req.modelUrl, draftUrl: needsDraft ? req.draftUrl : null, stages: count, numSlots });
    try {
      adapter = engine.adapter;
      if (count === req.stages || stages.length === 0) stages = engine.stageDescriptions;
      await runAll(engine, req, modes, runs);
    } finally {
      engine.destroy();
    }
  }
  return { adapter, stages, runs };
}
