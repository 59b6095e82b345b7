// What one generation reports, and the helpers every engine uses to build it.
import type { LoadedModel } from '../model/index.ts';
import type { GenerateMetrics, StopReason } from '../speculative/scheduler.ts';

export interface LocalRunReport {
  tokens: number[];
  text: string | null;
  promptIds: number[];
  stopReason: StopReason;
  logits?: number[][];
  stages: string[];
  adapter: string;
  /** Bytes of target weights on the GPU, all stages. */
  weightBytes: number;
  timings: { loadMs: number; generateMs: number; ttftMs: number | null; tbtP50Ms: number | null; tbtP95Ms: number | null; tokensPerSecond: number | null };
  metrics: GenerateMetrics;
  warnings: string[];
}

/** The prompt as token ids: `prompt` through the model's tokenizer, or `promptIds`; checked against the vocabulary. */
export function promptIdsOf(model: LoadedModel, modelUrl: string, req: { prompt?: string; promptIds?: number[] }): number[] {
  let promptIds = req.promptIds ?? [];
  if (req.prompt !== undefined) {
    if (!model.tokenizer) throw new Error(`${modelUrl} has no tokenizer.json: pass --prompt-ids instead of --prompt`);
    promptIds = model.tokenizer.encode(req.prompt);
  }
  if (promptIds.length === 0) throw new Error('the prompt is empty');
  const bad = promptIds.find((t) => !Number.isInteger(t) || t < 0 || t >= model.spec.vocabSize);
  if (bad !== undefined) throw new Error(`prompt id ${bad} is outside the vocabulary [0, ${model.spec.vocabSize})`);
  return promptIds;
}

/** Decode rate of `emitted` tokens after the first one (the prompt's prefill excluded). */
export function tokensPerSecond(emitted: number, m: GenerateMetrics): number | null {
  return emitted > 1 && m.ttftMs !== null ? ((emitted - 1) * 1000) / (m.totalMs - m.ttftMs) : null;
}
