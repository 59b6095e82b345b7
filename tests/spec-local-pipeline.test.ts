// The scheduler over the real in-tab plumbing (src/pipeline's StageRunner chain behind LocalPipeline)
// with CPU toy stages: asynchronous stages, look-ahead drops, credit, and no step clock.
import { describe, it, expect } from 'vitest';
import { LocalPipeline } from '../src/pipeline/local-pipeline.ts';
import type { StageCompute } from '../src/pipeline/stage-runner.ts';
import type { RowBatch, StageOutput } from '../src/gpu/types.ts';
import { generate, reservedSlots } from '../src/spec/scheduler.ts';
import { referenceGenerate, type TargetModel } from '../src/spec/toy-lm.ts';
import { selectToken } from '../src/spec/sampling.ts';
import { EOS, makeTarget, oracle } from './spec-helpers.ts';

/** A stage whose "hidden state" is the token id; it keeps and checks its own KV like a real one. */
class ToyStage implements StageCompute {
  private readonly committed: number[] = [];
  private readonly committedSet = new Set<number>();
  private readonly written = new Map<number, { token: number; position: number }>();
  readonly kv = {
    commit: (slots: Iterable<number>) => {
      for (const s of slots) {
        const e = this.written.get(s);
        if (!e || this.committedSet.has(s) || e.position !== this.committed.length) throw new Error(`stage ${this.index}: bad commit ${s}`);
        this.committed.push(s);
        this.committedSet.add(s);
      }
    },
    release: (slots: Iterable<number>) => {
      for (const s of slots) {
        if (this.committedSet.has(s)) throw new Error(`stage ${this.index}: release of committed ${s}`);
        this.written.delete(s);
      }
    },
  };
  constructor(
    private readonly index: number,
    private readonly last: boolean,
    private readonly target: TargetModel,
  ) {}

  async forward(b: RowBatch): Promise<StageOutput> {
    await new Promise((r) => setImmediate(r)); // let the other stages and the leader run
    const R = b.positions.length;
    const tokens = b.tokens ? Array.from(b.tokens) : Array.from(b.hidden!.subarray(0, R));
    const out = new Int32Array(R);
    for (let r = 0; r < R; r++) {
      if (this.committedSet.has(b.slots[r]) || this.written.has(b.slots[r])) throw new Error(`stage ${this.index}: slot ${b.slots[r]} overwritten`);
      let pos = this.committed.length;
      for (const a of b.ancestors[r]) {
        const e = this.written.get(a);
        if (!e || this.committedSet.has(a) || e.position !== pos++) throw new Error(`stage ${this.index}: bad ancestor ${a}`);
      }
      if (b.positions[r] !== pos) throw new Error(`stage ${this.index}: bad position`);
      this.written.set(b.slots[r], { token: tokens[r], position: b.positions[r] });
      if (this.last) {
        const prefix = [...this.committed, ...b.ancestors[r], b.slots[r]].map((s) => this.written.get(s)!.token);
        out[r] = selectToken(this.target(prefix), b.sampling![r], b.sampling![r].uniform);
      }
    }
    return this.last ? { tokens: out } : { hidden: Float32Array.from(tokens) };
  }

  heldSlots(): number {
    return this.written.size - this.committed.length;
  }
}

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
