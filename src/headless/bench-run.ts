// Page side of `npm run bench` with local stages: every mode on every prompt, one model load per
// stage count (single: its own one-stage engine). The mesh variant runs over the mesh engine instead.
import { createEngine } from '../app/create-engine.ts';
import type { TabEngine } from '../app/tab-engine.ts';
import { isSpeculative, type DraftKind } from '../app/modes.ts';
import { LiveStats } from '../app/live-stats.ts';
import type { GenerateMetrics, Mode } from '../speculative/scheduler.ts';
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

async function runAll(engine: TabEngine, req: BenchRequest, modes: Mode[], out: BenchRun[]): Promise<void> {
  const tokenizer = engine.info?.tokenizer;
  if (!tokenizer) throw new Error(`${req.modelUrl} has no tokenizer.json`);
  for (const mode of modes) {
    for (const [i, text] of req.prompts.entries()) {
      const speculative = isSpeculative(mode);
      const live = new LiveStats(engine.numStages, speculative);
      const r = await engine.generate(
        { mode, prompt: text, maxNewTokens: req.tokens, sampling: req.sampling, draft: speculative ? req.draft : 'none', width: req.width, depth: req.depth },
        { onToken: (t) => live.token(performance.now(), t.hit), onPacket: (_s, p) => live.packet(p) },
      ).report;
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
  const groups: [number, Mode[]][] = [
    [1, req.modes.filter((m) => m === 'single')],
    [req.stages, req.modes.filter((m) => m !== 'single')],
  ];
  let stages: string[] = [];
  let adapter = '';
  for (const [count, modes] of groups) {
    if (modes.length === 0) continue;
    const needsDraft = req.draft === 'model' && modes.some((m) => isSpeculative(m));
    const engine = createEngine({ model: req.modelUrl, draft: needsDraft ? req.draftUrl : null, stages: count });
    try {
      const info = await engine.load();
      adapter = info.adapter;
      if (count === req.stages || stages.length === 0) stages = info.stages;
      await runAll(engine, req, modes, runs);
    } finally {
      engine.dispose();
    }
  }
  return { adapter, stages, runs };
}
