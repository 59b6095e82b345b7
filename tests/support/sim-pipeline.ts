// A scripted pipeline for tests and benchmarks of the scheduler: S stages, each taking one step per
// level, applying verdicts like a real stage, and checking the KV invariants a real stage relies on
// (ancestors written earlier on this stage and not freed, positions contiguous, commits of written
// slots only). The last stage computes the target token with a scripted target model over the
// token prefix the stage's own KV describes, so a wrong verdict shows up as wrong output.

import type { LevelPacket, Pipeline, RequestConfig, ResultPacket, RowMeta, Verdict } from '../../src/pipeline/contract.ts';
import { selectToken } from '../../src/speculative/sampling.ts';
import type { TargetModel } from './toy-lm.ts';

export interface SimPipelineOptions {
  numStages: number;
  numSlots: number;
  target: TargetModel;
  /** Levels stage 1 may hold waiting (credit = this - queued). Default 1. */
  stage1Queue?: number;
  /** Throw on the first invariant violation (default true); otherwise collect them in `violations`. */
  strict?: boolean;
}

interface KvEntry {
  token: number;
  position: number;
}

/** One stage's view of one request's KV. */
export interface SimStageKv {
  epoch: number;
  /** Committed slots in commit order. */
  committed: number[];
  committedSet: Set<number>;
  /** Every slot holding K/V (committed or held by a tree node). */
  written: Map<number, KvEntry>;
}

export interface SimStats {
  steps: number;
  levels: number;
  rowsComputed: number;
  rowsDropped: number;
  /** Rows computed per stage per step, summed over stages (stage work). */
  busyStageSteps: number;
}

export class SimPipeline implements Pipeline {
  readonly numStages: number;
  readonly numSlots: number;
  readonly violations: string[] = [];
  readonly stats: SimStats = { steps: 0, levels: 0, rowsComputed: 0, rowsDropped: 0, busyStageSteps: 0 };
  private readonly queues: LevelPacket[][];
  private readonly kv: Map<number, SimStageKv>[];
  private readonly configs = new Map<number, RequestConfig>();
  private readonly handlers = new Set<(r: ResultPacket) => void>();
  private readonly target: TargetModel;
  private readonly stage1Queue: number;
  private readonly strict: boolean;

  constructor(opts: SimPipelineOptions) {
    if (opts.numStages < 1) throw new Error('SimPipeline: need at least one stage');
    this.numStages = opts.numStages;
    this.numSlots = opts.numSlots;
    this.target = opts.target;
    this.stage1Queue = opts.stage1Queue ?? 1;
    this.strict = opts.strict ?? true;
    this.queues = Array.from({ length: this.numStages }, () => []);
    this.kv = Array.from({ length: this.numStages }, () => new Map());
  }

  async begin(config: RequestConfig): Promise<void> {
    this.configs.set(config.request, config);
    for (const m of this.kv) m.set(config.request, { epoch: 0, committed: [], committedSet: new Set(), written: new Map() });
  }

  credit(): number {
    return Math.max(0, this.stage1Queue - this.queues[0].length);
  }

  send(level: LevelPacket): void {
    if (level.rows.length > 0 && level.hidden) this.violate(`level ${level.step}: hidden states on the way into stage 1`);
    this.stats.levels++;
    this.queues[0].push(structuredClone(level));
  }

  onResult(handler: (r: ResultPacket) => void): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  async waitForProgress(): Promise<void> {
    this.tick();
  }

  stepCount(): number {
    return this.stats.steps;
  }

  /** Levels anywhere in the pipeline. */
  get inFlight(): number {
    return this.queues.reduce((a, q) => a + q.length, 0);
  }

  /** Runs steps until every queue is empty. */
  drain(maxSteps = 100000): void {
    for (let i = 0; i < maxSteps && this.inFlight > 0; i++) this.tick();
  }

  /** A stage's KV bookkeeping for a request (stage 0 = stage 1). */
  stageKv(stage: number, request: number): SimStageKv {
    const s = this.kv[stage].get(request);
    if (!s) throw new Error(`no request ${request} on stage ${stage}`);
    return s;
  }

  /**
   * One pipeline step: every stage with a queued level computes the oldest one and hands it on
   * (the last stage first, so a level moves exactly one stage per step). Results are delivered
   * after the step.
   */
  tick(): void {
    this.stats.steps++;
    const results: ResultPacket[] = [];
    for (let s = this.numStages - 1; s >= 0; s--) {
      const pkt = this.queues[s].shift();
      if (!pkt) continue;
      const out = this.process(s, pkt);
      if (s === this.numStages - 1) results.push(out as ResultPacket);
      else this.queues[s + 1].push(out as LevelPacket);
    }
    for (const r of results) for (const h of this.handlers) h(r);
  }

  private violate(msg: string): void {
    this.violations.push(msg);
    if (this.strict) throw new Error(`SimPipeline invariant: ${msg}`);
  }

  private state(stage: number, request: number): SimStageKv {
    let st = this.kv[stage].get(request);
    if (!st) {
      this.violate(`stage ${stage}: level for request ${request} before begin()`);
      st = { epoch: 0, committed: [], committedSet: new Set(), written: new Map() };
      this.kv[stage].set(request, st);
    }
    return st;
  }

  private applyVerdict(stage: number, st: SimStageKv, v: Verdict, step: number): void {
    if (v.epoch < st.epoch) this.violate(`stage ${stage} step ${step}: verdict epoch ${v.epoch} < ${st.epoch}`);
    st.epoch = Math.max(st.epoch, v.epoch);
    for (const slot of v.commit) {
      const e = st.written.get(slot);
      if (!e) this.violate(`stage ${stage} step ${step}: commit of unwritten slot ${slot}`);
      else if (st.committedSet.has(slot)) this.violate(`stage ${stage} step ${step}: slot ${slot} committed twice`);
      else if (e.position !== st.committed.length) this.violate(`stage ${stage} step ${step}: committing slot ${slot} at position ${e.position}, prefix has ${st.committed.length}`);
      st.committed.push(slot);
      st.committedSet.add(slot);
    }
    for (const slot of v.release) {
      if (st.committedSet.has(slot)) this.violate(`stage ${stage} step ${step}: release of committed slot ${slot}`);
      st.written.delete(slot);
    }
  }

  /** Rows of `pkt` killed by a verdict queued behind it on this stage (as StageRunner does). */
  private killedByQueued(stage: number, st: SimStageKv, pkt: LevelPacket): (r: RowMeta) => boolean {
    let epoch = st.epoch;
    const released = new Set<number>();
    for (const later of this.queues[stage]) {
      if (later.request !== pkt.request || !later.verdict) continue;
      epoch = Math.max(epoch, later.verdict.epoch);
      for (const s of later.verdict.release) released.add(s);
    }
    return (r) => pkt.epoch < epoch || released.has(r.slot);
  }

  private process(stage: number, pkt: LevelPacket): LevelPacket | ResultPacket {
    const st = this.state(stage, pkt.request);
    if (pkt.verdict) this.applyVerdict(stage, st, pkt.verdict, pkt.step);
    const killed = this.killedByQueued(stage, st, pkt);
    const last = stage === this.numStages - 1;
    const cfg = this.configs.get(pkt.request) ?? { request: pkt.request, temperature: 0, topK: 0, topP: 1 };
    const kept: RowMeta[] = [];
    const tokens: number[] = [];
    // K/V of all rows first (a row may attend to an earlier row of the same level), then attention.
    const pending: { row: RowMeta; prefix: number[] | null }[] = [];
    const newly = new Set<number>();
    for (const row of pkt.rows) {
      if (killed(row)) {
        this.stats.rowsDropped++;
        continue;
      }
      const where = `stage ${stage} step ${pkt.step} node ${row.node} slot ${row.slot}`;
      if (!Number.isInteger(row.slot) || row.slot < 0 || row.slot >= this.numSlots) this.violate(`${where}: slot out of range`);
      if (st.committedSet.has(row.slot)) this.violate(`${where}: overwrites a committed slot`);
      else if (st.written.has(row.slot)) this.violate(`${where}: overwrites slot held by another row without a release`);
      // ancestors: written earlier on this stage (or earlier in this level), not committed, not freed,
      // at consecutive positions after the committed prefix
      let pos = st.committed.length;
      const prefix: number[] = [];
      if (last) for (const c of st.committed) prefix.push(st.written.get(c)!.token);
      for (const a of row.ancestors) {
        const e = st.written.get(a);
        if (!e) this.violate(`${where}: ancestor slot ${a} not written or freed`);
        else if (st.committedSet.has(a)) this.violate(`${where}: ancestor slot ${a} is committed`);
        else if (e.position !== pos) this.violate(`${where}: ancestor slot ${a} at position ${e.position}, expected ${pos}`);
        if (e && last) prefix.push(e.token);
        pos++;
      }
      if (row.position !== pos) this.violate(`${where}: position ${row.position}, prefix implies ${pos}`);
      if (new Set(row.ancestors).size !== row.ancestors.length || row.ancestors.includes(row.slot)) this.violate(`${where}: repeated slot in attend list`);
      st.written.set(row.slot, { token: row.token, position: row.position });
      newly.add(row.slot);
      kept.push(row);
      if (last) prefix.push(row.token);
      pending.push({ row, prefix: last ? prefix : null });
    }
    this.stats.rowsComputed += kept.length;
    if (kept.length) this.stats.busyStageSteps++;
    if (!last) return { ...pkt, rows: kept, hidden: new Float32Array(kept.length), logitsRows: [] };
    for (const { row, prefix } of pending) tokens.push(selectToken(this.target(prefix!), cfg, row.uniform));
    return { request: pkt.request, step: pkt.step, epoch: pkt.epoch, nodes: kept.map((r) => r.node), tokens, logits: null, logitsRows: [] };
  }
}
