// The leader's side of a pipeline whose stages are other tabs on a ring (LocalPipeline's networked
// sibling): levels go to stage 1 on the ring lane, results come back from the last stage. The
// request's config travels the same way ahead of its levels, so every stage resets before the
// first level and its return to the leader acknowledges the whole ring.
// Flow control: stage 1 reports how many levels of the request it has processed (a 'credit'
// message); credit() = depth + 1 - (sent - processed), as LocalPipeline counts stage 1's queue,
// and at most S + depth levels are in the ring at once: when a later stage is the slowest, levels
// would otherwise queue in front of it, adding latency and computing rows of an outdated tree.
import { percentile } from '../common/numerics.ts';
import type { EncodeOptions, MeshMessage } from './protocol.ts';
import { Wakeup, type LevelPacket, type Pipeline, type RequestConfig, type ResultPacket } from '../pipeline/contract.ts';

/** What the pipeline needs from the leader's Ring (src/mesh/ring.ts satisfies it). */
export interface LeaderPort {
  sendNextMessage(msg: MeshMessage, opts?: EncodeOptions): Promise<void>;
  onPrev(fn: (bytes: Uint8Array, msg: MeshMessage) => void): () => void;
  onDirect(fn: (from: string, bytes: Uint8Array, msg: MeshMessage) => void): () => void;
}

export interface RingPipelineOptions {
  numStages: number;
  numSlots: number;
  /** Peer id of stage 1 (only its credit messages count). */
  firstStage: string;
  /** Levels stage 1 may hold queued beyond the one it computes. Default 1. */
  depth?: number;
  /**
   * The first request begun resumes an interrupted one: its first `keep` positions (fewer than its
   * prompt) were committed on the ring before; stages that still hold them skip them (a 'keep'
   * message goes ahead of the config). Default 0.
   */
  keep?: number;
}

export class RingPipeline implements Pipeline {
  readonly numStages: number;
  readonly numSlots: number;
  private readonly depth: number;
  private readonly handlers = new Set<(r: ResultPacket) => void>();
  private readonly wakeup = new Wakeup();
  private readonly off: (() => void)[];
  private request = -1;
  private keepNext: number;
  private sent = 0;
  private processed = 0;
  private returned = 0;
  private error: Error | null = null;
  private configAck: { request: number; resolve: () => void; reject: (e: Error) => void } | null = null;
  private readonly sentAt = new Map<number, number>();
  /** Leader -> stage 1 -> ... -> leader time of every level that came back, ms. */
  readonly tripsMs: number[] = [];

  constructor(
    private readonly port: LeaderPort,
    private readonly opts: RingPipelineOptions,
  ) {
    this.numStages = opts.numStages;
    this.numSlots = opts.numSlots;
    this.depth = opts.depth ?? 1;
    this.keepNext = opts.keep ?? 0;
    this.off = [port.onPrev((_b, msg) => this.onPrev(msg)), port.onDirect((from, _b, msg) => this.onDirect(from, msg))];
  }

  async begin(config: RequestConfig): Promise<void> {
    if (this.error) throw this.error;
    this.request = config.request;
    this.sent = 0;
    this.processed = 0;
    this.returned = 0;
    this.sentAt.clear();
    const acked = new Promise<void>((resolve, reject) => (this.configAck = { request: config.request, resolve, reject }));
    const keep = this.keepNext;
    this.keepNext = 0;
    if (keep) await this.port.sendNextMessage({ type: 'keep', request: config.request, positions: keep });
    await this.port.sendNextMessage({ type: 'config', config });
    await acked;
  }

  credit(): number {
    const inRing = this.sent - this.returned;
    return Math.max(0, Math.min(this.depth + 1 - (this.sent - this.processed), this.numStages + this.depth - inRing));
  }

  send(level: LevelPacket): void {
    if (this.error) return; // the next waitForProgress reports it
    this.sent++;
    this.sentAt.set(level.step, performance.now());
    try {
      this.port.sendNextMessage({ type: 'level', packet: level }).catch((e: unknown) => this.fail(asError(e)));
    } catch (e) {
      this.fail(asError(e));
    }
  }

  onResult(handler: (result: ResultPacket) => void): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  async waitForProgress(signal?: AbortSignal): Promise<void> {
    if (this.error) throw this.error;
    await this.wakeup.wait(signal);
    if (this.error) throw this.error;
  }

  stepCount(): number | null {
    return null;
  }

  /** A step: the median level trip of this request (leader -> every stage -> leader) over S. */
  stepTimeMs(): number | null {
    const trip = percentile(this.tripsMs, 0.5);
    return trip === null ? null : trip / this.numStages;
  }

  /** Stops the pipeline: pending and later calls reject with `e` (a stage was lost, say). */
  fail(e: Error): void {
    if (this.error) return;
    this.error = e;
    this.configAck?.reject(e);
    this.configAck = null;
    this.wakeup.notify();
  }

  /** Detaches from the ring (results of this pipeline's requests are ignored from now on). */
  dispose(): void {
    for (const off of this.off) off();
  }

  private onPrev(msg: MeshMessage): void {
    if (msg.type === 'config') {
      if (this.configAck && msg.config.request === this.configAck.request) {
        this.configAck.resolve();
        this.configAck = null;
      }
    } else if (msg.type === 'result' && msg.packet.request === this.request) {
      this.returned++;
      const t = this.sentAt.get(msg.packet.step);
      if (t !== undefined) {
        this.tripsMs.push(performance.now() - t);
        this.sentAt.delete(msg.packet.step);
      }
      for (const h of this.handlers) h(msg.packet);
      this.wakeup.notify();
    }
  }

  private onDirect(from: string, msg: MeshMessage): void {
    if (msg.type === 'credit' && from === this.opts.firstStage && msg.request === this.request && msg.processed > this.processed) {
      this.processed = msg.processed;
      this.wakeup.notify();
    }
  }
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
