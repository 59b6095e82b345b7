// Runs every mode over local stages of one tab on the same prompts, for the losslessness test:
// an engine is loaded per stage count, and each run's tokens come back.
import { createEngine } from '../../src/app/create-engine.ts';
import type { DraftKind } from '../../src/app/modes.ts';
import type { GenerateMetrics, Mode } from '../../src/speculative/scheduler.ts';
import type { SamplingSettings } from '../../src/speculative/sampling.ts';

export interface LosslessCase {
  stages: number;
  mode: Mode;
  draft: DraftKind;
  width: number;
}

export interface LosslessRequest {
  modelUrl: string;
  draftUrl: string;
  prompts: string[];
  samplings: SamplingSettings[];
  cases: LosslessCase[];
  maxNewTokens: number;
}

export interface LosslessRun extends LosslessCase {
  prompt: number;
  sampling: number;
  tokens: number[];
  metrics: GenerateMetrics;
}

export async function runLossless(req: LosslessRequest): Promise<LosslessRun[]> {
  const runs: LosslessRun[] = [];
  for (const stages of [...new Set(req.cases.map((c) => c.stages))]) {
    const engine = createEngine({ model: req.modelUrl, draft: req.draftUrl, stages });
    try {
      await engine.load();
      for (const c of req.cases.filter((x) => x.stages === stages)) {
        for (const [pi, prompt] of req.prompts.entries()) {
          for (const [si, sampling] of req.samplings.entries()) {
            const r = await engine.generate({ mode: c.mode, prompt, maxNewTokens: req.maxNewTokens, sampling, draft: c.draft, width: c.width }).report;
            runs.push({ ...c, prompt: pi, sampling: si, tokens: r.tokens, metrics: r.metrics });
          }
        }
      }
    } finally {
      engine.dispose();
    }
  }
  return runs;
}
