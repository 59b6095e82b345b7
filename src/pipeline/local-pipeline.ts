// A Pipeline whose stages all live in this tab: StageRunners chained in memory. It is the
// single-tab mode (one stage) and the reference the ring of tabs must match.
import type { StageRole } from '../model/types.ts';
import type { LevelPacket, Pipeline, RequestConfig, ResultPacket } from './contract.ts';
import type { CostModel } from '../common/device-emulation.ts';
import { StageRunner, type PacketTrace, type StageCompute, type StageStats } from './stage-runner.ts';

export class LocalPipeline implements Pipeline {
  private readonly runners: StageRunner[];
  private readonly handlers = new Set<(r: ResultPacket) => void>();
  private waiters: (() => void)[] = [];
  private error: Error | null = null;
  /** Observes every packet each stage (0-based) computes. */
  onPacket: ((stage: number, p: PacketTrace) => void) | null = null;

  constructor(
    /** Each stage's compute and layers; `cost` emulates a dedicated device for it (see StageRunner). */
    stages: { compute: StageCompute; role: StageRole; cost?: CostModel | null }[],
    readonly numSlots: number,
    /** Levels stage 1 may hold queued beyond the one it computes. */
    private readonly depth = 1,
  ) {
    if (stages.length === 0) throw new Error('a pipeline needs at least one stage');
    this.runners = [];
    for (let i = stages.length - 1; i >= 0; i--) {
      const next = this.runners[0];
      const runner = new StageRunner(
        stages[i].compute,
        stages[i].role,
        (out) => {
          if ('level' in out) next.push(out.level);
          else {
            for (const h of this.handlers) h(out.result);
            this.wake();
          }
        },
        () => this.wake(),
        { cost: stages[i].cost },
      );
      runner.onPacket = (p) => this.onPacket?.(i, p);
      runner.onError = (e) => {
        this.error = e;
        this.wake();
      };
      this.runners.unshift(runner);
    }
  }

  get numStages(): number {
    return this.runners.length;
  }

  get stats(): StageStats[] {
    return this.runners.map((r) => ({ ...r.stats }));
  }

  async begin(config: RequestConfig): Promise<void> {
    for (const r of this.runners) r.configure(config);
  }

  credit(): number {
    return Math.max(0, this.depth - this.runners[0].queued + 1);
  }

  send(level: LevelPacket): void {
    this.runners[0].push(level);
  }

  onResult(handler: (result: ResultPacket) => void): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  waitForProgress(signal?: AbortSignal): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      const done = () => {
        signal?.removeEventListener('abort', done);
        if (this.error) reject(this.error);
        else resolve();
      };
      signal?.addEventListener('abort', done, { once: true });
      this.waiters.push(done);
    });
  }

  /**
   * Resolves once no stage has a packet queued or in progress. generate() returns right after
   * sending its final verdict; wait for this before the stages' KV is reset for another request.
   */
  async drained(): Promise<void> {
    while (!this.error && this.runners.some((r) => r.queued > 0)) await new Promise<void>((r) => this.waiters.push(r));
  }

  stepCount(): number | null {
    return null;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
