// A speculative source on top of a draft model that runs like a one-stage pipeline (embed + layers
// + head in one place, e.g. a src/gpu Stage): rows in, logits out, KV slots committed and released
// by the caller. The draft's KV pool uses the same slot ids as the target's stages, so mirroring the
// tree is just applying the same commits and releases.

import { logSoftmax, topKIndices } from './sampling.ts';
import type { Candidate, FrontierNode, SourceBegin, SourceCommit, SpeculativeSource } from './source.ts';

/** Rows a draft model computes: tokens at positions, the KV slots they write and attend to. */
export interface DraftRows {
  tokens: Int32Array;
  positions: Int32Array;
  slots: Int32Array;
  /** Per row, the slots of its uncommitted ancestors, root first. */
  ancestors: Int32Array[];
  /** Rows (indices) whose logits to return. */
  logitsRows: number[];
  /**
   * Instead of full logits, the k best tokens of each of logitsRows and their log-probabilities at
   * this temperature (a model that cannot, returns logits and the source ranks them itself).
   */
  candidates?: { k: number; temperature: number };
}

/**
 * What the source needs from a draft model (the app adapts a whole-model GPU stage to it). forward() must return logits for batch.logitsRows, row-major
 * [logitsRows.length * vocabSize]; each row attends to the committed slots (commit order), its
 * ancestors (written earlier or earlier in the batch), then itself.
 */
export interface DraftModel {
  readonly vocabSize: number;
  forward(rows: DraftRows): Promise<{ logits?: Float32Array; candidates?: { ids: Int32Array; logprobs: Float32Array } }>;
  commitSlots(slots: number[]): void;
  releaseSlots(slots: number[]): void;
  /** Forget every slot (a new sequence). */
  resetSlots(): void;
}

export interface DraftSourceOptions {
  /** Softmax temperature for the candidates' log-probs (default 1). */
  temperature?: number;
  /** Rows per forward when ingesting the prompt (default 64). */
  chunk?: number;
}

interface Pending {
  token: number;
  position: number;
  slot: number;
}

export class DraftModelSource implements SpeculativeSource {
  readonly name = 'draft';
  /** Uncommitted slots whose K/V the draft has written. */
  private readonly written = new Set<number>();
  /** Committed text the draft still has to commit, in order (some of it it has to compute first). */
  private queue: Pending[] = [];
  private root: Pending | null = null;
  forwards = 0;
  rows = 0;

  constructor(
    private readonly model: DraftModel,
    private readonly opts: DraftSourceOptions = {},
  ) {}

  async begin(init: SourceBegin): Promise<void> {
    this.model.resetSlots();
    this.written.clear();
    const n = init.prompt.length;
    this.queue = init.prompt.slice(0, n - 1).map((token, position) => ({ token, position, slot: init.slots[position] }));
    this.root = { token: init.prompt[n - 1], position: n - 1, slot: init.slots[n - 1] };
    await this.flush();
  }

  async propose(frontier: readonly FrontierNode[], k: number): Promise<Candidate[][]> {
    await this.flush();
    if (frontier.length === 0) return [];
    const temperature = this.opts.temperature ?? 1;
    const out = await this.run(
      frontier.map((f) => ({ token: f.token, position: f.position, slot: f.slot, ancestors: f.path.map((p) => p.slot) })),
      { k, temperature },
    );
    for (const f of frontier) this.written.add(f.slot);
    const c = out.candidates;
    if (c) {
      if (c.ids.length !== frontier.length * k || c.logprobs.length !== c.ids.length) throw new Error(`draft source: ${c.ids.length} candidates for ${frontier.length} rows of ${k}`);
      return frontier.map((_, i) => Array.from(c.ids.subarray(i * k, (i + 1) * k), (token, j) => ({ token, logprob: c.logprobs[i * k + j] })));
    }
    const V = this.model.vocabSize;
    if (!out.logits || out.logits.length !== frontier.length * V) throw new Error('draft source: forward returned no logits for the rows');
    const logits = out.logits;
    return frontier.map((_, i) => {
      const lp = logSoftmax(logits.subarray(i * V, (i + 1) * V), temperature);
      return topKIndices(lp, k).map((token) => ({ token, logprob: lp[token] }));
    });
  }

  async commit(e: SourceCommit): Promise<void> {
    const old = this.root!;
    if (old.slot !== e.committedSlot) throw new Error(`draft source: committed slot ${e.committedSlot}, expected the root's ${old.slot}`);
    this.queue.push(old);
    const gone = e.releasedSlots.filter((s) => this.written.delete(s));
    if (gone.length) this.model.releaseSlots(gone);
    this.root = { token: e.root.token, position: e.root.position, slot: e.root.slot };
  }

  async end(): Promise<void> {
    const held = [...this.written];
    this.written.clear();
    if (held.length) this.model.releaseSlots(held);
    this.queue = [];
    this.root = null;
  }

  /**
   * Commits queued text in order; tokens whose K/V the draft never computed (the prompt, a
   * committed tree-mode leaf, a root committed before it was expanded) are computed first, in
   * causal batches.
   */
  private async flush(): Promise<void> {
    const chunk = this.opts.chunk ?? 64;
    let batch: Pending[] = [];
    const runBatch = async (): Promise<void> => {
      if (!batch.length) return;
      const rows = batch.map((p, i) => ({ token: p.token, position: p.position, slot: p.slot, ancestors: batch.slice(0, i).map((q) => q.slot) }));
      await this.run(rows, null);
      this.model.commitSlots(batch.map((p) => p.slot));
      batch = [];
    };
    for (const p of this.queue) {
      if (this.written.has(p.slot)) {
        await runBatch();
        this.written.delete(p.slot);
        this.model.commitSlots([p.slot]);
      } else {
        batch.push(p);
        if (batch.length >= chunk) await runBatch();
      }
    }
    await runBatch();
    this.queue = [];
  }

  /** Runs rows through the draft; `candidates` asks for every row's best k (null: K/V only). */
  private async run(rows: { token: number; position: number; slot: number; ancestors: number[] }[], candidates: { k: number; temperature: number } | null): ReturnType<DraftModel['forward']> {
    const batch: DraftRows = {
      tokens: Int32Array.from(rows, (r) => r.token),
      positions: Int32Array.from(rows, (r) => r.position),
      slots: Int32Array.from(rows, (r) => r.slot),
      ancestors: rows.map((r) => Int32Array.from(r.ancestors)),
      logitsRows: candidates ? rows.map((_, i) => i) : [],
      ...(candidates ? { candidates } : {}),
    };
    this.forwards++;
    this.rows += rows.length;
    return this.model.forward(batch);
  }
}
