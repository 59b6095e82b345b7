// One stage of the ring, in its tab: a StageRunner per request around this tab's compute. Ring
// messages from the previous node are handled strictly in arrival order (one promise chain), so a
// request's config resets the KV before that request's first level is computed. Levels go on to
// the next node; the last stage's results go back to the leader; stage 1 reports credit.
// A 'keep' message ahead of a config marks a resumed request: the stage's KeptPrefix (one per loaded
// compute, so it survives a re-formed ring when this tab keeps its layers) serves the positions it
// holds and the stage tells the leader how many it kept and computed again ('resumed').
import type { EncodeOptions, MeshMessage, PayloadDtype } from './protocol.ts';
import type { StageRole } from '../model/types.ts';
import type { RequestConfig } from '../pipeline/contract.ts';
import { StageRunner, type StageCompute, type StageStats } from '../pipeline/stage-runner.ts';
import { KeptPrefix } from '../pipeline/kept-prefix.ts';
import { errorMessage } from '../common/errors.ts';
import type { CostModel } from '../common/device-emulation.ts';

/** A stage's compute whose KV can be emptied for a new request (src/gpu's Stage). */
export interface ResettableCompute extends StageCompute {
  readonly kv: StageCompute['kv'] & { reset(): void };
}

/** What the stage needs from its Ring (src/mesh/ring.ts, with the leader's id bound). */
export interface StagePort {
  sendNext(msg: MeshMessage, opts?: EncodeOptions): Promise<void>;
  sendLeader(msg: MeshMessage): Promise<void>;
}

export interface RingStageStats extends StageStats {
  request: number;
  /** From the request's config to the end of its last packet, ms. */
  spanMs: number;
}

interface Current {
  config: RequestConfig;
  runner: StageRunner;
  flags: {
    /** Cleared when a newer request supersedes this one: its leftover packets are skipped. */
    live: boolean;
    failed: boolean;
    processed: number;
    startedAt: number;
    lastAt: number;
  };
}

export class RingStage {
  private compute: { compute: ResettableCompute; role: StageRole; wire: PayloadDtype; cost: CostModel | null; prefix: KeptPrefix } | null = null;
  /** The 'keep' that announced the next request (a resume), until its config arrives. */
  private keep: { request: number; positions: number } | null = null;
  private current: Current | null = null;
  private chain: Promise<void> = Promise.resolve();
  private idleWaiters: (() => void)[] = [];
  /** Called with errors of the compute or the ring (the caller reports them). */
  onError: (e: Error) => void = (e) => console.error(e);
  /** Called when a resumed request went past its kept positions (the stage tab shows it too). */
  onResumed: (message: Extract<MeshMessage, { type: 'resumed' }>) => void = () => undefined;

  constructor(private readonly port: StagePort) {}

  /** Handles one ring message from the previous node (call in arrival order). */
  handle(msg: MeshMessage): void {
    if (msg.type === 'config') this.enqueue(() => this.begin(msg.config));
    else if (msg.type === 'keep') {
      this.enqueue(async () => {
        this.keep = { request: msg.request, positions: msg.positions };
        await this.port.sendNext(msg);
      });
    }
    else if (msg.type === 'level') {
      const packet = msg.packet;
      this.enqueue(async () => {
        const cur = this.current;
        // A level of a request this stage is not running (stale after a re-form) is dropped.
        if (cur && cur.flags.live && cur.config.request === packet.request) cur.runner.push(packet);
      });
    }
  }

  /**
   * Installs this tab's compute (after a load); waits until no packet is being computed. `cost`
   * emulates a dedicated device: each level takes at least its budget (see StageRunner).
   */
  async setCompute(compute: ResettableCompute | null, role: StageRole | null, wire: PayloadDtype = 'f32', cost: CostModel | null = null): Promise<void> {
    await this.enqueueAndWait(async () => {
      await this.retire();
      // The same compute (this tab kept its layers) keeps what it holds of the committed text.
      const prefix = compute && this.compute?.compute === compute ? this.compute.prefix : compute ? new KeptPrefix(compute.kv) : null;
      this.compute = compute && role && prefix ? { compute, role, wire, cost, prefix } : null;
    });
  }

  stats(): RingStageStats | null {
    const cur = this.current;
    if (!cur) return null;
    return { ...cur.runner.stats, request: cur.config.request, spanMs: cur.flags.lastAt - cur.flags.startedAt };
  }

  private enqueue(step: () => Promise<void>): void {
    this.chain = this.chain.then(step).catch((e: unknown) => this.onError(e instanceof Error ? e : new Error(String(e))));
  }

  /** Like enqueue, but the caller gets the step's outcome (and handles its error). */
  private enqueueAndWait(step: () => Promise<void>): Promise<void> {
    const done = this.chain.then(step);
    this.chain = done.catch(() => undefined);
    return done;
  }

  private async begin(config: RequestConfig): Promise<void> {
    await this.retire();
    const c = this.compute;
    if (!c) throw new Error(`request ${config.request} arrived before this stage had layers to run`);
    const keep = this.keep?.request === config.request ? this.keep.positions : 0;
    this.keep = null;
    c.prefix.begin(keep);
    const now = performance.now();
    const f: Current['flags'] = { live: true, failed: false, processed: 0, startedAt: now, lastAt: now };
    // Packets of a superseded request are skipped without touching the GPU.
    const gated: StageCompute = {
      kv: c.compute.kv,
      forward: (batch) => (f.live ? c.compute.forward(batch) : Promise.resolve({})),
    };
    const runner = new StageRunner(
      gated,
      c.role,
      (out) => {
        if (!f.live) return;
        const sent = 'level' in out ? this.port.sendNext({ type: 'level', packet: out.level }, { dtype: c.wire }) : this.port.sendNext({ type: 'result', packet: out.result });
        sent.catch((e: unknown) => this.onError(new Error(`request ${config.request}: could not pass a packet on: ${errorMessage(e)}`)));
      },
      () => {
        f.lastAt = performance.now();
        f.processed++;
        if (c.role.embed && f.live) void this.port.sendLeader({ type: 'credit', request: config.request, processed: f.processed }).catch(() => undefined);
        this.wakeIdle();
      },
      {
        cost: c.cost,
        prefix: c.prefix,
        onResumed: (r) => {
          const msg = { type: 'resumed', request: config.request, ...r, ms: performance.now() - now } as const;
          this.onResumed(msg);
          void this.port.sendLeader(msg).catch(() => undefined);
        },
      },
    );
    runner.onError = (e) => {
      f.failed = true;
      this.wakeIdle();
      this.onError(new Error(`request ${config.request}: ${e.message}`));
    };
    runner.configure(config);
    this.current = { config, runner, flags: f };
    await this.port.sendNext({ type: 'config', config });
  }

  /** Supersedes the current request and waits until its runner has stopped computing. */
  private async retire(): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    cur.flags.live = false;
    while (cur.runner.queued > 0 && !cur.flags.failed) await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  private wakeIdle(): void {
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
