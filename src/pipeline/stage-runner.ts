// Runs one pipeline stage over a FIFO of level packets: applies verdicts in order, drops rows that
// a later queued verdict has already killed (look-ahead), computes the rest, and emits the next
// stage's packet (or the leader's results at the last stage). Knows packets and slots, not trees.
import type { RowBatch, RowSampling, StageOutput } from '../gpu/types.ts';
import type { StageRole } from '../model/types.ts';
import type { LevelPacket, RequestConfig, ResultPacket, RowMeta, Verdict } from './contract.ts';
import { onEmulatedDevice, REAL_CLOCK, type CostModel, type EmulationClock } from '../common/device-emulation.ts';
import { percentile } from '../common/numerics.ts';
import type { KeptPrefix, ResumeStats } from './kept-prefix.ts';

/** What the runner needs from a stage's compute (src/gpu's Stage satisfies it). */
export interface StageCompute {
  forward(batch: RowBatch): Promise<StageOutput>;
  readonly kv: { commit(slots: Iterable<number>): void; release(slots: Iterable<number>): void };
}

export type StageEmit = (out: { level: LevelPacket } | { result: ResultPacket }) => void;

export interface StageStats {
  packets: number;
  rowsComputed: number;
  rowsDropped: number;
  busyMs: number;
  /** Packets that computed at least one row (the levels an emulated device is charged for). */
  levels: number;
  /** Levels whose real compute took longer than the emulated budget (0 without emulation). */
  overruns: number;
  /** Emulated levels cut short because a verdict that arrived meanwhile killed all their rows. */
  cancelled: number;
  /** Median time of a level that computed rows, padding included: the stage's time per level. */
  levelMsP50: number | null;
}

/** How a runner computes: an emulated dedicated device's cost per level (see common/device-emulation.ts). */
export interface StageRunnerOptions {
  /** Each level that computes rows takes at least fixedMs + perRowMs * rows (null: real time). */
  cost?: CostModel | null;
  clock?: EmulationClock;
  /**
   * What this stage keeps of the committed text across requests (a ring stage's partial recovery):
   * rows at kept positions are served from it instead of computed, slots go through its mapping.
   */
  prefix?: KeptPrefix | null;
  /** Called once per resumed request, when its last kept position has gone by this stage. */
  onResumed?: (stats: ResumeStats) => void;
}

/** One packet as a stage handled it: for live views of the pipeline (which level is where). */
export interface PacketTrace {
  step: number;
  epoch: number;
  rowsComputed: number;
  rowsDropped: number;
  startMs: number;
  endMs: number;
}

export class StageRunner {
  private readonly inbox: LevelPacket[] = [];
  private running = false;
  /** A packet is being processed (cleared before onProcessed, so callbacks see it done). */
  private computing = false;
  private epoch = 0;
  private config: RequestConfig = { request: 0, temperature: 0, topK: 0, topP: 1 };
  private readonly counts = { packets: 0, rowsComputed: 0, rowsDropped: 0, busyMs: 0, levels: 0, overruns: 0, cancelled: 0 };
  /** The level on the (emulated) device now, and how to stop its wait. */
  private current: { packet: LevelPacket; rows: RowMeta[]; stop: AbortController } | null = null;
  private readonly levelMs: number[] = [];
  private readonly clock: EmulationClock;
  /** Called with any error of a forward; the runner stops taking packets after one. */
  onError: (e: Error) => void = (e) => console.error(e);
  /** Called after each packet is computed, before it is passed on. */
  onPacket: ((p: PacketTrace) => void) | null = null;
  private failed = false;

  constructor(
    private readonly compute: StageCompute,
    private readonly role: StageRole,
    private readonly emit: StageEmit,
    /** Called after every packet (flow control: stage 1 has room again). */
    private readonly onProcessed: () => void = () => undefined,
    private readonly options: StageRunnerOptions = {},
  ) {
    this.clock = options.clock ?? REAL_CLOCK;
  }

  /** What this runner did so far. */
  get stats(): StageStats {
    return { ...this.counts, levelMsP50: percentile(this.levelMs, 0.5) };
  }

  configure(config: RequestConfig): void {
    this.config = config;
  }

  /** Packets waiting, the one in progress included: the leader's flow control reads this. */
  get queued(): number {
    return this.inbox.length + (this.computing ? 1 : 0);
  }

  push(packet: LevelPacket): void {
    this.inbox.push(packet);
    const cur = this.current;
    if (cur && packet.verdict && this.aliveRows({ ...cur.packet, rows: cur.rows }).length === 0) cur.stop.abort();
    if (!this.running && !this.failed) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.inbox.length > 0) {
        const packet = this.inbox.shift()!;
        this.computing = true;
        await this.process(packet);
        this.computing = false;
        this.onProcessed();
      }
    } catch (e) {
      this.failed = true;
      this.onError(e instanceof Error ? e : new Error(String(e)));
    } finally {
      this.computing = false;
      this.running = false;
    }
  }

  private applyVerdict(v: Verdict | null): void {
    if (!v) return;
    if (v.epoch > this.epoch) this.epoch = v.epoch;
    const kv = this.options.prefix ?? this.compute.kv;
    if (v.commit.length) kv.commit(v.commit);
    if (v.release.length) kv.release(v.release);
  }

  /** Rows of `packet` that no verdict (its own or one queued behind it) has killed. */
  private aliveRows(packet: LevelPacket): number[] {
    let epoch = this.epoch;
    const released = new Set<number>();
    for (const later of this.inbox) {
      if (!later.verdict) continue;
      epoch = Math.max(epoch, later.verdict.epoch);
      for (const s of later.verdict.release) released.add(s);
    }
    const keep: number[] = [];
    packet.rows.forEach((r, i) => {
      if (packet.epoch >= epoch && !released.has(r.slot)) keep.push(i);
    });
    return keep;
  }

  private async process(packet: LevelPacket): Promise<void> {
    const c = this.counts;
    const t0 = this.clock.now();
    this.applyVerdict(packet.verdict);
    const keep = this.aliveRows(packet);
    c.packets++;
    c.rowsDropped += packet.rows.length - keep.length;
    const rows: RowMeta[] = keep.map((i) => packet.rows[i]);
    const logitsRows = packet.logitsRows.map((i) => keep.indexOf(i)).filter((i) => i >= 0);
    // Rows at positions this stage kept from before a resume pass on what it passed on then.
    const prefix = this.options.prefix ?? null;
    const served = rows.map((r) => prefix?.served(r));
    const todo = rows.flatMap((_, i) => (served[i] === undefined ? [i] : []));
    const computed = todo.map((i) => rows[i]);
    const computedLogits = logitsRows.map((i) => todo.indexOf(i)).filter((i) => i >= 0);
    let out: StageOutput = {};
    if (computed.length > 0) {
      const batch = this.batchOf(packet, computed, todo.map((i) => keep[i]), computedLogits);
      // On an emulated device the level takes its budget; the next one waits like on a real device.
      // Only an emulated device's wait can be cut short; real compute runs to its end.
      const current = this.options.cost ? { packet, rows: computed, stop: new AbortController() } : null;
      this.current = current;
      try {
        out = await onEmulatedDevice(this.options.cost ?? null, computed.length, c, () => this.compute.forward(batch), this.clock, current?.stop.signal);
      } finally {
        this.current = null;
      }
      prefix?.wrote(computed, batch.slots, out.hidden);
      c.rowsComputed += computed.length;
      if (current?.stop.signal.aborted) {
        // Every row died while the device worked on them: pass the level on empty.
        c.cancelled++;
        computed.length = 0;
        rows.length = 0;
        todo.length = 0;
        logitsRows.length = 0;
        computedLogits.length = 0;
        out = {};
      }
    }
    const t1 = this.clock.now();
    c.busyMs += t1 - t0;
    if (computed.length > 0) this.levelMs.push(t1 - t0);
    this.onPacket?.({ step: packet.step, epoch: packet.epoch, rowsComputed: computed.length, rowsDropped: packet.rows.length - keep.length, startMs: t0, endMs: t1 });
    const resumed = prefix?.resumeDone(Math.max(-1, ...rows.map((r) => r.position)));
    if (resumed) this.options.onResumed?.(resumed);
    if (this.role.head) {
      this.emit({
        result: {
          request: packet.request,
          step: packet.step,
          epoch: packet.epoch,
          nodes: computed.map((r) => r.node),
          tokens: out.tokens ? Array.from(out.tokens) : [],
          logits: out.logits ?? null,
          logitsRows: computedLogits.map((i) => computed[i].node),
        },
      });
    } else {
      const hidden = todo.length === rows.length ? (out.hidden ?? new Float32Array(0)) : mergeRows(served, todo, out.hidden);
      this.emit({ level: { ...packet, rows, hidden, logitsRows } });
    }
  }

  private batchOf(packet: LevelPacket, rows: RowMeta[], keep: number[], logitsRows: number[]): RowBatch {
    const prefix = this.options.prefix ?? null;
    const placed = prefix ? rows.map((r) => prefix.place(r)) : null;
    const batch: RowBatch = {
      positions: Int32Array.from(rows, (r) => r.position),
      slots: placed ? Int32Array.from(placed, (p) => p.slot) : Int32Array.from(rows, (r) => r.slot),
      ancestors: placed ? placed.map((p) => p.ancestors) : rows.map((r) => Int32Array.from(r.ancestors)),
    };
    if (this.role.embed) {
      batch.tokens = Int32Array.from(rows, (r) => r.token);
    } else {
      if (!packet.hidden) throw new Error(`stage got step ${packet.step} without hidden states`);
      const width = packet.hidden.length / packet.rows.length;
      const hidden = new Float32Array(rows.length * width);
      keep.forEach((src, dst) => hidden.set(packet.hidden!.subarray(src * width, (src + 1) * width), dst * width));
      batch.hidden = hidden;
    }
    if (this.role.head) {
      const c = this.config;
      batch.sampling = rows.map((r): RowSampling => ({ temperature: c.temperature, topK: c.topK, topP: c.topP, uniform: r.uniform }));
      batch.logitsRows = logitsRows;
    }
    return batch;
  }
}

/** Hidden states of a level whose rows were partly served from a kept prefix, partly computed (`todo`, in order). */
function mergeRows(served: (Float32Array | null | undefined)[], todo: number[], computed: Float32Array | undefined): Float32Array {
  const width = served.find((h) => h)?.length ?? (computed && todo.length ? computed.length / todo.length : 0);
  const out = new Float32Array(served.length * width);
  let j = 0;
  served.forEach((h, i) => {
    if (h) out.set(h, i * width);
    else if (computed && todo[j] === i) out.set(computed.subarray(j * width, ++j * width), i * width);
  });
  return out;
}
