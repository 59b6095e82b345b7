// Runs every mode over local stages of one tab on the same prompts, for the losslessness test:
// the model is loaded once, an engine is built per stage count, and each run's tokens come back.
import { loadModel, urlSource } from '../../src/model/index.ts';
import { LocalEngine, type DraftKind } from '../../src/app/local-engine.ts';
import { reservedSlots, type GenerateMetrics, type Mode } from '../../src/speculative/scheduler.ts';
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
  const [model, draft] = await Promise.all([loadModel(urlSource(req.modelUrl)), loadModel(urlSource(req.draftUrl), { tokenizer: false })]);
  if (!model.tokenizer) throw new Error('the target needs a tokenizer');
  const prompts = req.prompts.map((p) => model.tokenizer!.encode(p));
  const longest = Math.max(...prompts.map((p) => p.length)) + req.maxNewTokens + 1;
  const runs: LosslessRun[] = [];
  for (const stages of [...new Set(req.cases.map((c) => c.stages))]) {
    const cases = req.cases.filter((c) => c.stages === stages);
    const numSlots = longest + Math.max(...cases.map((c) => reservedSlots(c.mode, stages, { width: c.width })));
    const engine = await LocalEngine.create(model, { stages, numSlots, draft });
    try {
      for (const c of cases) {
        for (const [pi, prompt] of prompts.entries()) {
          for (const [si, sampling] of req.samplings.entries()) {
            const r = await engine.run({
              mode: c.mode,
              prompt,
              maxNewTokens: req.maxNewTokens,
              eosTokens: model.spec.eosTokenIds,
              sampling,
              draft: c.draft,
              width: c.width,
            });
            runs.push({ ...c, prompt: pi, sampling: si, tokens: r.tokens, metrics: r.metrics });
          }
        }
      }
    } finally {
      engine.destroy();
    }
  }
  return runs;
}
