// Helpers every engine uses to start and report a generation.
import type { LoadedModel } from '../model/index.ts';
import type { GenerateMetrics } from '../speculative/scheduler.ts';
import { BadRequestError } from '../common/errors.ts';

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

/** Decode rate of `emitted` tokens after the first one (the prompt's prefill excluded). */
export function tokensPerSecond(emitted: number, m: GenerateMetrics): number | null {
  return emitted > 1 && m.ttftMs !== null ? ((emitted - 1) * 1000) / (m.totalMs - m.ttftMs) : null;
}
