// A stage tab: measures its speed, joins the room and the ring, loads the layers the leader assigns
// (only those tensors: Range reads + cache), and runs them on every level that passes (RingStage).
import { SignalClient, type WebSocketFactory } from '../mesh/signal-client.ts';
import { Ring, type RingOptions } from '../mesh/ring.ts';
import type { LinkTuning } from '../mesh/peer.ts';
import { encodeMessage, type MeshMessage } from '../mesh/protocol.ts';
import { loadModel, modelSource, type LoadedModel, type TensorCache } from '../model/index.ts';
import type { StageRole } from '../model/types.ts';
import { createGpuContext, type GpuContext } from '../gpu/device.ts';
import { buildStageOn, type ComputeStage } from '../pipeline/gpu-stages.ts';
import type { BackendChoice, StageBackend } from '../pipeline/backend.ts';
import { describeRole } from '../pipeline/layers.ts';
import { RingStage } from '../mesh/ring-stage.ts';
import { backendSpeed, chooseBackend, describeBackend } from './backend.ts';
import { errorMessage } from '../common/errors.ts';

/** Where a stage is: measuring its speed, joining, waiting for a leader, loading, serving, or done. */
export type StagePhase = 'benchmark' | 'joining' | 'waiting' | 'loading' | 'ready' | 'leader-gone' | 'failed' | 'closed';

/** A stage's state as it reports it (the stage tab's page draws it). */
export interface StageStatus {
  phase: StagePhase;
  /** This tab's id in the room ('' before joining). */
  id: string;
  /** Place in the ring (1 = first stage), -1 before the ring forms. */
  index: number;
  /** e.g. 'layers 2-4 + head'; null before the first assignment. */
  role: string | null;
  device: string;
  gbps: number | null;
  /** Bytes of weights fetched for the current load. */
  load: { done: number; total: number } | null;
  /** What happened last, in words (errors included). */
  message: string;
}

/** How a stage joins a room. */
export interface StageNodeOptions {
  room: string;
  secret?: string;
  name?: string;
  /** ws(s)://host/signal (default: this page's origin). */
  signalUrl?: string;
  onStatus?: (s: StageStatus) => void;
  /** Link timings (ping period, silence timeout); hop delay is the leader's setting. */
  tuning?: LinkTuning;
  /** Bytes this tab may use for weights and KV (the leader assigns no more layers); default unknown. */
  memoryBytes?: number;
  /** Opens the signalling WebSocket; default the global WebSocket (Node: the `ws` package's, from the stage host). */
  createWebSocket?: WebSocketFactory;
  /** Where fetched weights are cached; default IndexedDB (Node: the stage host's disk cache). */
  weightCache?: TensorCache;
  /** What computes the layers: 'webgpu' (default), 'wasm' (CPU) or 'auto' (the faster in the speed probe). */
  backend?: BackendChoice;
}

/** A running stage: its id in the room and a way to leave. */
export interface StageNode {
  readonly id: string;
  readonly status: StageStatus;
  /** The ring this tab is part of (diagnostics and tests). */
  readonly ring: Ring;
  /** Resolves with the reason once this stage has left (closed, or gone on its own: device lost, bad message). */
  readonly closed: Promise<string>;
  /** Leaves the ring and the room; `reason` is what the status and `closed` say. */
  close(reason?: string): void;
}

interface Loaded {
  key: string;
  stage: ComputeStage;
}

/** Starts a stage tab. Rejects if WebGPU is missing or the room refuses it (SignallingError: wrong secret, ...). */
export async function startStageNode(opts: StageNodeOptions): Promise<StageNode> {
  const status: StageStatus = { phase: 'benchmark', id: '', index: -1, role: null, device: '', gbps: null, load: null, message: 'measuring this tab\'s speed' };
  const update = (patch: Partial<StageStatus>): void => {
    Object.assign(status, patch);
    opts.onStatus?.({ ...status });
  };
  update({});
  // The CPU backend needs no GPU: a named 'wasm' stage opens no device (a host where Dawn finds none).
  let ctx: GpuContext | null;
  let signal: SignalClient;
  let backend: StageBackend;
  try {
    ctx = opts.backend === 'wasm' ? null : await createGpuContext();
    const decision = await chooseBackend(opts.backend ?? 'webgpu', ctx);
    backend = decision.backend;
    update({ device: describeBackend(decision, ctx?.description ?? ''), gbps: await backendSpeed(decision, ctx), phase: 'joining', message: `joining room "${opts.room}"` });
    signal = await SignalClient.connect({ room: opts.room, secret: opts.secret, url: opts.signalUrl, meta: { role: 'stage', name: opts.name ?? '' }, createWebSocket: opts.createWebSocket });
  } catch (e) {
    update({ phase: 'failed', message: errorMessage(e) });
    throw e;
  }
  update({ id: signal.id, phase: 'waiting', message: 'waiting for the leader to form the ring' });
  const ringOptions: RingOptions = { name: opts.name, ...opts.tuning, formTimeoutMs: 24 * 3600_000 };
  let ring: Ring;
  try {
    ring = await Ring.join(signal, ringOptions);
  } catch (e) {
    signal.close();
    ctx?.device.destroy();
    update({ phase: 'failed', message: errorMessage(e) });
    throw e;
  }
  return new StageTab(ring, ringOptions, signal, ctx, backend, status, update, opts);
}

class StageTab implements StageNode {
  private readonly work: RingStage;
  private loaded: Loaded | null = null;
  private model: { url: string; model: Promise<LoadedModel> } | null = null;
  private loads: Promise<void> = Promise.resolve();
  private isClosed = false;
  private resolveClosed!: (reason: string) => void;
  readonly closed = new Promise<string>((r) => (this.resolveClosed = r));
  private readonly memoryBytes: number;
  private readonly weightCache: TensorCache | undefined;

  constructor(
    public ring: Ring,
    private readonly ringOptions: RingOptions,
    private readonly signal: SignalClient,
    private readonly ctx: GpuContext | null,
    private readonly backend: StageBackend,
    readonly status: StageStatus,
    private readonly update: (patch: Partial<StageStatus>) => void,
    opts: StageNodeOptions,
  ) {
    this.memoryBytes = opts.memoryBytes ?? 0;
    this.weightCache = opts.weightCache;
    this.work = new RingStage({
      sendNext: async (msg, o) => this.ring.sendNextMessage(msg, o), // async: a missing link rejects, never throws
      sendLeader: (msg) => this.toLeader(msg),
    });
    this.work.onError = (e) => {
      this.update({ message: e.message });
      void this.toLeader({ type: 'error', code: 'stage-error', message: e.message.slice(0, 900) }).catch(() => undefined);
    };
    // Partial recovery, as this tab saw it: what it kept of the committed text, what it computed again.
    this.work.onResumed = (r) => this.update({ message: `resumed: kept ${r.kept} of ${r.keep} committed positions, prefilled ${r.prefilled} (${r.ms.toFixed(0)} ms)` });
    this.attach(ring);
    // A lost device loses the layers: leave like a closed tab, so the leader re-forms the ring.
    void ctx?.lost.then((e) => {
      if (this.isClosed) return;
      this.update({ phase: 'failed', message: e.message });
      void this.toLeader({ type: 'error', code: 'device-lost', message: e.message.slice(0, 900) })
        .catch(() => undefined)
        .finally(() => this.close(e.message));
    });
  }

  /** Takes part in `ring` (the first one, or the next leader's) and tells its leader this tab's speed. */
  private attach(ring: Ring): void {
    this.ring = ring;
    // Whatever an earlier leader's ring still delivers is ignored (request ids restart per leader).
    const current = (): boolean => ring === this.ring;
    ring.onPrev((_bytes, msg) => {
      if (!current()) return;
      if (msg.type === 'config') ring.resetStats(); // per-hop latency is reported per request
      this.work.handle(msg);
    });
    ring.onDirect((_from, _bytes, msg) => current() && this.onDirect(msg));
    ring.on('peer-lost', (e) => {
      if (!current()) return;
      if (e.peer === ring.leader && (e.kind === 'protocol' || e.kind === 'remote-error')) {
        this.update({ phase: 'failed', message: e.message });
        this.close(e.message);
      } else if (e.peer === ring.leader) {
        void this.awaitNewLeader(`the leader left the room (${e.message})`);
      } else {
        this.update({ message: `lost ${e.peer}: ${e.message}; waiting for the leader to re-form the ring` });
        // "<peer id> <why>": the leader may not have noticed (a link between two stages failed first).
        void this.toLeader({ type: 'error', code: 'neighbour-lost', message: `${e.peer} ${e.kind}: ${e.message}`.slice(0, 900) }).catch(() => undefined);
      }
    });
    ring.on('error', (e) => current() && this.update({ message: e.message }));
    this.update({ index: ring.index });
    void this.toLeader({ type: 'info', device: this.status.device, gbps: this.status.gbps ?? 0, memoryBytes: this.memoryBytes }).catch(() => undefined);
  }

  /** The leader is gone: stay in the room (weights kept) and join the ring the next leader forms. */
  private async awaitNewLeader(why: string): Promise<void> {
    this.ring.close('the leader left');
    this.update({ phase: 'leader-gone', index: -1, message: `${why}; waiting for a new leader in this room` });
    try {
      const ring = await Ring.join(this.signal, this.ringOptions);
      if (this.isClosed) return ring.close('stage tab closed');
      this.update({ phase: 'waiting', message: 'joined the new leader\'s ring' });
      this.attach(ring);
    } catch (e) {
      if (!this.isClosed) this.update({ phase: 'failed', message: errorMessage(e) });
    }
  }

  get id(): string {
    return this.ring.id;
  }

  close(reason = 'stage tab closed'): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (this.status.phase !== 'failed') this.update({ phase: 'closed', message: reason });
    this.ring.close(reason);
    this.signal.close();
    void this.work
      .setCompute(null, null)
      .then(() => {
        this.loaded?.stage.destroy();
        this.loaded = null;
        this.ctx?.device.destroy();
      })
      .finally(() => this.resolveClosed(reason));
  }

  private async toLeader(msg: MeshMessage): Promise<void> {
    return this.ring.sendDirect(this.ring.leader, encodeMessage(msg));
  }

  private onDirect(msg: MeshMessage): void {
    if (msg.type === 'load') {
      // Loads run one after another; a newer one simply follows an older one.
      this.loads = this.loads.then(() => this.load(msg));
    } else if (msg.type === 'query') {
      const s = this.work.stats();
      const link = this.ring.link(this.ring.next)?.stats();
      void this.toLeader({
        type: 'stats',
        request: msg.request,
        packets: s?.request === msg.request ? s.packets : 0,
        rowsComputed: s?.request === msg.request ? s.rowsComputed : 0,
        rowsDropped: s?.request === msg.request ? s.rowsDropped : 0,
        busyMs: s?.request === msg.request ? s.busyMs : 0,
        spanMs: s?.request === msg.request ? s.spanMs : 0,
        nextRttP50Ms: link?.rttP50 ?? null,
        nextRttP95Ms: link?.rttP95 ?? null,
        nextRttSamples: link?.rttSamples ?? 0,
        levels: s?.request === msg.request ? s.levels : 0,
        overruns: s?.request === msg.request ? s.overruns : 0,
        levelMsP50: s?.request === msg.request ? s.levelMsP50 : null,
      }).catch(() => undefined);
    }
  }

  private async load(m: Extract<MeshMessage, { type: 'load' }>): Promise<void> {
    const role: StageRole = { layers: { start: m.start, end: m.end }, embed: m.embed, head: m.head };
    const key = JSON.stringify([m.modelUrl, role, m.numSlots]);
    const t0 = performance.now();
    this.ring.setHopDelay(m.hopDelayMs);
    this.update({ index: this.ring.index, role: describeRole(role) });
    try {
      if (this.loaded?.key !== key) {
        this.update({ phase: 'loading', load: { done: 0, total: 0 }, message: `loading ${describeRole(role)}` });
        await this.work.setCompute(null, null); // nothing computes on the old stage any more
        this.loaded?.stage.destroy();
        this.loaded = null;
        if (this.model?.url !== m.modelUrl) this.model = { url: m.modelUrl, model: loadModel(modelSource(m.modelUrl, { cache: this.weightCache }), { tokenizer: false, cache: this.weightCache }) };
        let lastSent = 0;
        const stage = await buildStageOn(this.backend, this.ctx, await this.model.model, role, {
          numSlots: m.numSlots,
          cache: this.weightCache,
          onProgress: (done, total) => {
            this.update({ load: { done, total } });
            const now = performance.now();
            if (now - lastSent > 100 || done === total) {
              lastSent = now;
              void this.toLeader({ type: 'progress', load: m.load, done, total }).catch(() => undefined);
            }
          },
        });
        this.loaded = { key, stage };
      }
      // The cost of an emulated dedicated device (the weights stay loaded when only that changes).
      const cost = m.stageFixedMs || m.stagePerRowMs ? { fixedMs: m.stageFixedMs, perRowMs: m.stagePerRowMs } : null;
      await this.work.setCompute(this.loaded.stage, role, m.wire, cost);
      this.update({ phase: 'ready', message: `ready: ${describeRole(role)}` });
      await this.toLeader({ type: 'loaded', load: m.load, weightBytes: this.loaded.stage.weightBytes, ms: performance.now() - t0, error: '' });
    } catch (e) {
      this.model = null; // a failed read is not cached
      this.update({ phase: 'failed', message: `loading ${describeRole(role)} failed: ${errorMessage(e)}` });
      await this.toLeader({ type: 'loaded', load: m.load, weightBytes: 0, ms: performance.now() - t0, error: errorMessage(e).slice(0, 900) }).catch(() => undefined);
    }
  }
}

