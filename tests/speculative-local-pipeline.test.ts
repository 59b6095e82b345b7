// The scheduler over the real in-tab plumbing (src/pipeline's StageRunner chain behind LocalPipeline)
// with CPU toy stages: asynchronous stages, look-ahead drops, credit, and no step clock.
import { describe, it, expect } from 'vitest';
import { LocalPipeline } from '../src/pipeline/local-pipeline.ts';
import { generate, reservedSlots } from '../src/speculative/scheduler.ts';
import { referenceGenerate } from './support/toy-lm.ts';
import { EOS, makeTarget, oracle, ToyStage } from './support/speculative-helpers.ts';

describe('generate over LocalPipeline (StageRunner chain) with asynchronous toy stages', () => {
  const target = makeTarget(41);
  const sampling = { temperature: 0.8, topK: 30, topP: 0.95, seed: 77 };
  const prompt = [3, 14, 15, 9, 26];

  for (const S of [1, 3, 5]) {
    it(`S=${S}: every mode is lossless and the stages end with only committed slots`, async () => {
      const ref = referenceGenerate(target, prompt, 60, sampling, [EOS]);
      for (const [mode, width] of [['pp', 1], ['specpipe', 1], ['specpipe', 3], ['tree', 2]] as const) {
        const stages = Array.from({ length: S }, (_, i) => new ToyStage(i, i === S - 1, target));
        const numSlots = prompt.length + 60 + reservedSlots(mode, S, { width });
        const pipe = new LocalPipeline(
          stages.map((compute, i) => ({ compute, role: { layers: { start: i, end: i + 1 }, embed: i === 0, head: i === S - 1 } })),
          numSlots,
        );
        const res = await generate(pipe, { mode, prompt, maxNewTokens: 60, sampling, eosTokens: [EOS], source: oracle(target, sampling, 0.7), width });
        expect(res.tokens, `${mode} W=${width}`).toEqual(ref.tokens);
        expect(res.metrics.tokensPerStep).toBeNull();
        await new Promise((r) => setTimeout(r, 20)); // the final verdict reaches every stage
        for (const st of stages) expect(st.heldSlots()).toBe(0);
      }
    });
  }
});
