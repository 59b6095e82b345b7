import { generate, reservedSlots, type GenerateOptions, type GenerateResult, type Mode } from '../../src/speculative/scheduler.ts';
import { SimPipeline } from './sim-pipeline.ts';
import { toyTargetModel, type TargetModel } from './toy-lm.ts';
import { OracleSource } from './oracle-source.ts';
import type { SamplingSettings } from '../../src/speculative/sampling.ts';
import type { SpeculativeSource } from '../../src/speculative/source.ts';
import type { DraftModel, DraftRows } from '../../src/speculative/draft-source.ts';
import type { RowBatch, StageOutput } from '../../src/gpu/types.ts';
import type { StageCompute } from '../../src/pipeline/stage-runner.ts';
import { logSoftmax, selectToken, topKIndices } from '../../src/speculative/sampling.ts';

export const VOCAB = 48;
export const EOS = 0;

export function makeTarget(seed = 1, eosBias = -2): TargetModel {
  return toyTargetModel({ vocabSize: VOCAB, context: 3, seed, sharpness: 6, eosToken: EOS, eosBias });
}

export interface RunSpec {
  mode: Mode;
  stages: number;
  target: TargetModel;
  prompt: number[];
  maxNewTokens: number;
  sampling: SamplingSettings;
  source?: SpeculativeSource | null;
  width?: number;
  eos?: boolean;
  extra?: Partial<GenerateOptions>;
  numSlots?: number;
  stage1Queue?: number;
}

/** Runs a generation on a fresh simulator, drains it, and checks the slot bookkeeping afterwards. */
export async function runSim(spec: RunSpec): Promise<{ result: GenerateResult; sim: SimPipeline }> {
  const numSlots = spec.numSlots ?? spec.prompt.length + spec.maxNewTokens + reservedSlots(spec.mode, spec.stages, { width: spec.width, ...spec.extra });
  const sim = new SimPipeline({ numStages: spec.stages, numSlots, target: spec.target, stage1Queue: spec.stage1Queue });
  const result = await generate(sim, {
    mode: spec.mode,
    prompt: spec.prompt,
    maxNewTokens: spec.maxNewTokens,
    sampling: spec.sampling,
    source: spec.source ?? null,
    width: spec.width,
    eosTokens: spec.eos === false ? [] : [EOS],
    ...spec.extra,
  });
  sim.drain();
  return { result, sim };
}

export function oracle(target: TargetModel, sampling: SamplingSettings, p: number, seed = 7, pLater = 0.5): OracleSource {
  return new OracleSource({ target, vocabSize: VOCAB, sampling, p, seed, pLater });
}

export { seededRandom as rng } from '../../src/common/numerics.ts';

export function randomPrompt(r: () => number, len: number): number[] {
  return Array.from({ length: len }, () => 1 + Math.floor(r() * (VOCAB - 1)));
}

/**
 * After a drained generation: every stage holds exactly the committed slots, the same ones in the
 * same order, and they spell the prompt + the committed output (the last token may be missing: it
 * is committed text but its row never had to go through the pipeline).
 */
export function checkSlots(sim: SimPipeline, prompt: number[], result: GenerateResult, request = 1): void {
  const text = [...prompt, ...result.tokens];
  if (result.stopReason === 'eos') text.push(EOS);
  const first = sim.stageKv(0, request).committed;
  for (let s = 0; s < sim.numStages; s++) {
    const kv = sim.stageKv(s, request);
    if (JSON.stringify(kv.committed) !== JSON.stringify(first)) throw new Error(`stage ${s} committed slots differ from stage 0`);
    if (kv.written.size !== kv.committed.length) throw new Error(`stage ${s}: ${kv.written.size} slots hold K/V but ${kv.committed.length} are committed (leak)`);
    const toks = kv.committed.map((slot) => kv.written.get(slot)!.token);
    if (toks.length !== text.length && toks.length !== text.length - 1) throw new Error(`stage ${s}: ${toks.length} committed slots for ${text.length} tokens of text`);
    if (JSON.stringify(toks) !== JSON.stringify(text.slice(0, toks.length))) throw new Error(`stage ${s}: committed slots do not spell the text`);
  }
  if (sim.violations.length) throw new Error(sim.violations.join('\n'));
}

/**
 * A CPU "draft model" with a KV pool that checks what a real one relies on: ancestors written and
 * not freed, positions contiguous after the committed prefix, commits of written slots only. Its
 * logits come from a toy LM over the token prefix its own KV describes, so broken mirroring of the
 * tree shows up as wrong guesses or a thrown error.
 */
export class ToyDraftModel implements DraftModel {
  readonly committed: number[] = [];
  private readonly committedSet = new Set<number>();
  readonly kv = new Map<number, { token: number; position: number }>();
  forwards = 0;
  constructor(
    readonly vocabSize: number,
    private readonly lm: TargetModel,
    /** Answer a request for candidates with ranked ids and log-probs (as the GPU top-k does), not logits. */
    private readonly ranks = false,
  ) {}

  async forward(b: DraftRows): Promise<{ logits?: Float32Array; candidates?: { ids: Int32Array; logprobs: Float32Array } }> {
    this.forwards++;
    const R = b.positions.length;
    const committedSet = this.committedSet;
    const prefixes: number[][] = [];
    for (let r = 0; r < R; r++) {
      const slot = b.slots[r];
      if (committedSet.has(slot)) throw new Error(`draft: row overwrites committed slot ${slot}`);
      if (this.kv.has(slot)) throw new Error(`draft: row overwrites held slot ${slot} without a release`);
      const prefix = this.committed.map((s) => this.kv.get(s)!.token);
      let pos = this.committed.length;
      for (const a of b.ancestors[r]) {
        const e = this.kv.get(a);
        if (!e || committedSet.has(a) || e.position !== pos) throw new Error(`draft: bad ancestor slot ${a} for row at ${b.positions[r]}`);
        prefix.push(e.token);
        pos++;
      }
      if (b.positions[r] !== pos) throw new Error(`draft: row position ${b.positions[r]}, prefix implies ${pos}`);
      this.kv.set(slot, { token: b.tokens![r], position: b.positions[r] });
      prefix.push(b.tokens![r]);
      prefixes.push(prefix);
    }
    const rows = b.logitsRows ?? [];
    const c = b.candidates;
    if (this.ranks && c) {
      const ids = new Int32Array(rows.length * c.k);
      const logprobs = new Float32Array(rows.length * c.k);
      rows.forEach((r, i) => {
        const lp = logSoftmax(this.lm(prefixes[r]), c.temperature);
        topKIndices(lp, c.k).forEach((t, j) => {
          ids[i * c.k + j] = t;
          logprobs[i * c.k + j] = lp[t];
        });
      });
      return { candidates: { ids, logprobs } };
    }
    const logits = new Float32Array(rows.length * this.vocabSize);
    rows.forEach((r, i) => logits.set(this.lm(prefixes[r]), i * this.vocabSize));
    return { logits };
  }

  commitSlots(slots: number[]): void {
    for (const s of slots) {
      const e = this.kv.get(s);
      if (!e || this.committedSet.has(s) || e.position !== this.committed.length) throw new Error(`draft: bad commit of slot ${s}`);
      this.committed.push(s);
      this.committedSet.add(s);
    }
  }

  releaseSlots(slots: number[]): void {
    for (const s of slots) {
      if (this.committedSet.has(s)) throw new Error(`draft: release of committed slot ${s}`);
      this.kv.delete(s);
    }
  }

  resetSlots(): void {
    this.committed.length = 0;
    this.committedSet.clear();
    this.kv.clear();
  }
}

/** A stage whose "hidden state" is the token id; it keeps and checks its own KV like a real one. */
export class ToyStage implements StageCompute {
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
        // Like KvSlots, a committed slot may be forgotten, but only from the end (a kept prefix cut back).
        if (this.committedSet.has(s)) {
          if (this.committed[this.committed.length - 1] !== s) throw new Error(`stage ${this.index}: release of committed ${s}`);
          this.committed.pop();
          this.committedSet.delete(s);
        }
        this.written.delete(s);
      }
    },
    /** A new request: forget everything. */
    reset: () => {
      this.committed.length = 0;
      this.committedSet.clear();
      this.written.clear();
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
