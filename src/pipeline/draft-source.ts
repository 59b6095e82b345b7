// The draft model as a speculative source: all of its layers in one Stage in the leader tab, with a
// KV pool that mirrors the tree slot for slot (follow the hit child, flush on a miss, ingest x).
import type { Candidate, FrontierNode, SourceBegin, SourceCommit, SourceNode, SpeculativeSource } from '../spec/source.ts';
import type { RowBatch, StageOutput } from '../gpu/types.ts';

/** The part of a Stage (all layers, embedding and head) the draft needs. */
export interface DraftCompute {
  forward(batch: RowBatch): Promise<StageOutput>;
  readonly kv: { commit(slots: Iterable<number>): void; release(slots: Iterable<number>): void; reset(): void };
  readonly maxRows: number;
}

interface Row {
  token: number;
  position: number;
  slot: number;
  ancestors: number[];
}

/** Top-k of log-softmax(logits), best first. */
export function topKLogProbs(logits: Float32Array, k: number): Candidate[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const logZ = max + Math.log(sum);
  const best: Candidate[] = [];
  for (let i = 0; i < logits.length; i++) {
    const l = logits[i];
    if (best.length === k && l <= best[k - 1].logprob + logZ) continue;
    let j = Math.min(best.length, k - 1);
    if (best.length < k) best.push({ token: i, logprob: 0 });
    while (j > 0 && best[j - 1].logprob + logZ < l) {
      best[j] = best[j - 1];
      j--;
    }
    best[j] = { token: i, logprob: l - logZ };
  }
  return best;
}

export class DraftModelSource implements SpeculativeSource {
  readonly name = 'draft-model';
  /** Slots whose K/V the draft has written. */
  private written = new Set<number>();
  /** Committed slots the draft has not written yet, in order: computed before the next propose. */
  private pending: Row[] = [];
  private nodes = new Map<number, SourceNode>();
  /** Draft forwards run (for reports). */
  forwards = 0;

  constructor(private readonly draft: DraftCompute) {}

  async begin(init: SourceBegin): Promise<void> {
    this.draft.kv.reset();
    this.written.clear();
    this.nodes.clear();
    this.pending = init.prompt.slice(0, -1).map((token, i) => ({ token, position: i, slot: init.slots[i], ancestors: [] }));
    const last = init.prompt.length - 1;
    this.nodes.set(init.slots[last], { node: -1, token: init.prompt[last], position: last, slot: init.slots[last] });
    await this.flushPending();
  }

  async propose(frontier: readonly FrontierNode[], k: number): Promise<Candidate[][]> {
    await this.flushPending();
    // Ancestors the draft never computed (a root committed before it was expanded, tree leaves):
    // compute them first, in path order, so the frontier attends to real K/V.
    const missing: Row[] = [];
    const seen = new Set<number>();
    for (const f of frontier) {
      for (let i = 0; i < f.path.length; i++) {
        const p = f.path[i];
        this.nodes.set(p.slot, p);
        if (this.written.has(p.slot) || seen.has(p.slot)) continue;
        seen.add(p.slot);
        missing.push({ token: p.token, position: p.position, slot: p.slot, ancestors: f.path.slice(0, i).map((a) => a.slot) });
      }
    }
    if (missing.length) await this.run(missing, []);
    const rows = frontier.map((f) => {
      this.nodes.set(f.slot, f);
      return { token: f.token, position: f.position, slot: f.slot, ancestors: f.path.map((a) => a.slot) };
    });
    const out: Candidate[][] = [];
    for (let i = 0; i < rows.length; i += this.draft.maxRows) {
      const chunk = rows.slice(i, i + this.draft.maxRows);
      const logits = await this.run(chunk, chunk.map((_, j) => j));
      const V = logits.length / chunk.length;
      chunk.forEach((_, j) => out.push(topKLogProbs(logits.subarray(j * V, (j + 1) * V), k)));
    }
    return out;
  }

  async commit(e: SourceCommit): Promise<void> {
    if (e.releasedSlots.length) {
      this.draft.kv.release(e.releasedSlots);
      for (const s of e.releasedSlots) {
        this.written.delete(s);
        this.nodes.delete(s);
      }
    }
    const old = this.nodes.get(e.committedSlot);
    if (this.written.has(e.committedSlot) && this.pending.length === 0) this.draft.kv.commit([e.committedSlot]);
    else if (old) this.pending.push({ token: old.token, position: old.position, slot: e.committedSlot, ancestors: [] });
    else throw new Error(`draft: committed slot ${e.committedSlot} holds no known token`);
    this.nodes.delete(e.committedSlot);
    this.nodes.set(e.root.slot, e.root);
  }

  async end(): Promise<void> {
    this.draft.kv.reset();
    this.written.clear();
    this.pending = [];
    this.nodes.clear();
  }

  /** Commits pending slots in order, computing the unwritten ones first as a causal chain. */
  private async flushPending(): Promise<void> {
    const rows = this.pending;
    this.pending = [];
    let run: Row[] = [];
    const computeRun = async () => {
      for (let i = 0; i < run.length; i += this.draft.maxRows) {
        const chunk = run.slice(i, i + this.draft.maxRows).map((r, j, c) => ({ ...r, ancestors: c.slice(0, j).map((a) => a.slot) }));
        await this.run(chunk, []);
        this.draft.kv.commit(chunk.map((r) => r.slot));
      }
      run = [];
    };
    for (const r of rows) {
      if (this.written.has(r.slot)) {
        await computeRun();
        this.draft.kv.commit([r.slot]);
      } else run.push(r);
    }
    await computeRun();
  }

  private async run(rows: Row[], logitsRows: number[]): Promise<Float32Array> {
    const out = await this.draft.forward({
      tokens: Int32Array.from(rows, (r) => r.token),
      positions: Int32Array.from(rows, (r) => r.position),
      slots: Int32Array.from(rows, (r) => r.slot),
      ancestors: rows.map((r) => Int32Array.from(r.ancestors)),
      logitsRows,
    });
    this.forwards++;
    for (const r of rows) this.written.add(r.slot);
    return out.logits ?? new Float32Array(0);
  }
}
