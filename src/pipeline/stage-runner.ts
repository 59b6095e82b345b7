// Runs one pipeline stage over a FIFO of level packets: applies verdicts in order, drops rows that
// a later queued verdict has already killed (look-ahead), computes the rest, and emits the next
// stage's packet (or the leader's results at the last stage). Knows packets and slots, not trees.
import type { RowBatch, RowSampling, StageOutput } from '../gpu/types.ts';
import type { StageRole } from '../model/types.ts';
import type { LevelPacket, RequestConfig, ResultPacket, RowMeta, Verdict } from './contract.ts';
import { onEmulatedDevice, REAL_CLOCK, type CostModel, type EmulationClock } from '../common/device-emulation.ts';
import { percentile } from '../common/numerics.ts';

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
  /** Median time of a level that computed rows, padding included: the stage's time per level. */
  levelMsP50: number | null;
}

/** How a runner computes: an emulated dedicated device's cost per level (see common/device-emulation.ts). */
export interface StageRunnerOptions {
  /** Each level that computes rows takes at least fixedMs + perRowMs * rows (null: real time). */
  cost?: CostModel | null;
  clock?: EmulationClock;
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
  private readonly counts = { packets: 0, rowsComputed: 0, rowsDropped: 0, busyMs: 0, levels: 0, overruns: 0 };
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
    if (v.commit.length) this.compute.kv.commit(v.commit);
    if (v.release.length) this.compute.kv.release(v.release);
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
    let out: StageOutput = {};
    if (rows.length > 0) {
      const batch = this.batchOf(packet, rows, keep, logitsRows);
      // On an emulated device the level takes its budget; the next one waits like on a real device.
      out = await onEmulatedDevice(this.options.cost ?? null, rows.length, c, () => this.compute.forward(batch), this.clock);
      c.rowsComputed += rows.length;
    }
    const t1 = this.clock.now();
    c.busyMs += t1 - t0;
    if (rows.length > 0) this.levelMs.push(t1 - t0);
    this.onPacket?.({ step: packet.step, epoch: packet.epoch, rowsComputed: rows.length, rowsDropped: packet.rows.length - keep.length, startMs: t0, endMs: t1 });
    if (this.role.head) {
      this.emit({
        result: {
          request: packet.request,
          step: packet.step,
          epoch: packet.epoch,
          nodes: rows.map((r) => r.node),
          tokens: out.tokens ? Array.from(out.tokens) : [],
          logits: out.logits ?? null,
          logitsRows: logitsRows.map((i) => rows[i].node),
        },
      });
    } else {
      this.emit({ level: { ...packet, rows, hidden: out.hidden ?? new Float32Array(0), logitsRows } });
    }
  }

  private batchOf(packet: LevelPacket, rows: RowMeta[], keep: number[], logitsRows: number[]): RowBatch {
    const batch: RowBatch = {
      positions: Int32Array.from(rows, (r) => r.position),
      slots: Int32Array.from(rows, (r) => r.slot),
      ancestors: rows.map((r) => Int32Array.from(r.ancestors)),
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
