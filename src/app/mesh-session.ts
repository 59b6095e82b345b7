// The leader tab of a mesh: forms the ring, assigns layers in proportion to each stage tab's
// measured speed, has the stages load them, and runs generate() over a RingPipeline in any mode.
// A stage tab lost mid-run: the ring is re-formed with the tabs left (or a spare one), layers are
// re-assigned and loaded, and generation goes on as a new request whose prompt is the prompt plus
// the tokens committed so far. Sampling uniforms are keyed to absolute positions, so the output is
// the one an undisturbed run gives.
import { checkTreeShape, DEFAULT_MAX_CONTEXT, isSpeculative, kvSlotsFor, treeShape, type DraftKind } from './modes.ts';
import { SignalClient } from '../mesh/signal-client.ts';
import { Ring } from '../mesh/ring.ts';
import type { LinkCloseEvent } from '../mesh/peer.ts';
import { encodeMessage, type MeshMessage } from '../mesh/protocol.ts';
import { loadModel, tensorNamesForRole, urlSource, type LoadedModel } from '../model/index.ts';
import type { StageRole } from '../model/types.ts';
import { createGpuContext, type GpuContext } from '../gpu/device.ts';
import type { Stage } from '../gpu/stage.ts';
import { describeRole, splitLayersWithin } from '../pipeline/layers.ts';
import { RingPipeline } from '../mesh/ring-pipeline.ts';
import { generate } from '../speculative/scheduler.ts';
import { percentile } from '../common/numerics.ts';
import { BadRequestError, SpecpipeError, errorMessage } from '../common/errors.ts';
import { buildDraftStage, loadDraft, speculativeSource, type DraftDevice } from './draft.ts';
import { generationReport, promptIdsOf } from './generation.ts';
import { startStageNode, type StageNode } from './stage-node.ts';
import { hopOneWayMs, mergedMetrics, ringHops, stageWork, type StatsReply } from './mesh-report.ts';
import type { HopLatency, MeshOpenOptions, MeshPhase, MeshRunOptions, MeshRunReport, MeshStatus, StageWork } from './mesh-types.ts';

export type * from './mesh-types.ts';
import type { EngineInfo, GenerationRequest } from './engine.ts';

/** A stage tab went away (or misbehaved) while the leader needed it. */
export class StageLostError extends SpecpipeError {
  constructor(message: string) {
    super('stage-lost', message);
  }
}

type Info = Extract<MeshMessage, { type: 'info' }>;
type Loaded = Extract<MeshMessage, { type: 'loaded' }>;

const MAX_RECOVERIES = 5;

export class MeshSession {
  readonly status: MeshStatus;
  private ring!: Ring;
  private readonly modelUrl: string;
  private readonly infos = new Map<string, Info>();
  private readonly loadResults = new Map<string, Loaded>();
  private readonly statsReplies = new Map<string, StatsReply>();
  private readonly lost = new Set<string>();
  private readonly waiters = new Set<() => void>();
  private losses = 0;
  /** What failed the session (phase 'failed'): later calls rethrow it, type and all. */
  private failure: Error | null = null;
  private lastLoss = '';
  private loadSeq = 0;
  private nextRequest = 1;
  private active: RingPipeline | null = null;
  private recovering: Promise<void> | null = null;
  private busy = false;
  private closed = false;
  /** Time open() took: joining, waiting for the stage tabs, loading their layers. */
  loadMs = 0;
  private readonly numSlots: number;
  private draft: { ctx: GpuContext; stage: Stage } | null = null;
  private readonly closedSignal = new AbortController();
  private ownStage: Promise<StageNode> | null = null;

  private constructor(
    private readonly opts: MeshOpenOptions,
    /** The target's config and tokenizer (the leader reads them; stages load the weights). */
    readonly model: LoadedModel,
    private readonly signal: SignalClient,
  ) {
    this.modelUrl = absoluteUrl(opts.modelUrl);
    this.status = { phase: 'forming', room: opts.room, stages: [], hops: [], log: [], error: null };
    this.numSlots = kvSlotsFor(Math.min(model.spec.maxPositions, opts.maxContext ?? DEFAULT_MAX_CONTEXT), opts.stages);
  }

  /** The model and the ring as loaded: each stage's layers, the devices, the weight bytes. */
  get info(): EngineInfo {
    const stages = this.status.stages;
    return {
      spec: this.model.spec,
      tokenizer: this.model.tokenizer,
      stages: stages.map((s) => s.role ?? '?'),
      adapter: [...new Set(stages.map((s) => s.device))].join('; '),
      weightBytes: stages.reduce((a, s) => a + s.weightBytes, 0),
      loadMs: this.loadMs,
    };
  }

  /** Joins the room as leader, waits for the stage tabs, assigns and loads their layers. */
  static async open(opts: MeshOpenOptions): Promise<MeshSession> {
    const t0 = performance.now();
    const model = await loadModel(urlSource(absoluteUrl(opts.modelUrl)));
    const signal = await SignalClient.connect({ room: opts.room, secret: opts.secret, url: opts.signalUrl, meta: { role: 'leader', name: opts.name ?? 'leader' } });
    const session = new MeshSession(opts, model, signal);
    const onAbort = (): void => session.close();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (opts.signal?.aborted) throw new Error('aborted');
      session.log(`waiting for ${opts.stages} stage tab(s) in room "${opts.room}"`);
      const lead = Ring.lead(signal, { stages: opts.stages, hopDelayMs: opts.hopDelayMs, name: opts.name, ...opts.tuning, formTimeoutMs: opts.waitMs ?? 600_000 });
      lead.then((r) => session.closed && r.close('the session was closed'), () => undefined);
      session.ring = await Promise.race([lead, session.whenClosed(), session.holdStage()]);
      session.attach();
      await session.assign();
      session.loadMs = performance.now() - t0;
    } catch (e) {
      if (opts.signal?.aborted) {
        session.close();
        throw new DOMException('stopped while waiting for the stage tabs', 'AbortError');
      }
      session.fail(e);
      session.close();
      throw e;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
    return session;
  }

  /** Generates over the ring; survives lost stage tabs (see the top of this file). One at a time. */
  async generate(req: GenerationRequest, opts: MeshRunOptions = {}): Promise<MeshRunReport> {
    if (this.busy) throw new BadRequestError('a generation is already running in this session');
    this.busy = true;
    try {
      return await this.run(req, opts);
    } finally {
      this.busy = false;
      if (!this.closed && this.status.phase === 'generating') this.setPhase('ready');
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.active?.fail(new Error('the session was closed'));
    this.ring?.close('the leader closed the session');
    this.signal.close();
    this.draft?.stage.destroy();
    this.draft?.ctx.device.destroy();
    void this.ownStage?.then((n) => n.close(), () => undefined);
    this.setPhase('closed');
    this.closedSignal.abort();
    this.poke();
  }

  /**
   * With holdStage, this tab joins its own room as one of the stages too (a stage node beside the
   * leader, linked to it like any other tab); rejects if that stage cannot start, else never settles.
   */
  private holdStage(): Promise<never> {
    if (!this.opts.holdStage) return new Promise<never>(() => undefined);
    const o = this.opts;
    const own = startStageNode({ room: o.room, secret: o.secret, signalUrl: o.signalUrl, name: `${o.name ?? 'leader'} (stage)`, tuning: o.tuning });
    this.ownStage = own;
    return own.then(
      (node) => {
        if (this.closed) node.close();
        return new Promise<never>(() => undefined);
      },
      (e: unknown) => {
        throw new Error(`this tab could not hold a stage: ${errorMessage(e)}`);
      },
    );
  }

  private whenClosed(): Promise<never> {
    const closed = this.closedSignal.signal;
    return new Promise((_, reject) => {
      const fail = (): void => reject(new Error('the session was closed'));
      if (closed.aborted) fail();
      else closed.addEventListener('abort', fail, { once: true });
    });
  }

  // ------------------------------------------------------------------ generation

  private async run(req: GenerationRequest, opts: MeshRunOptions): Promise<MeshRunReport> {
    await this.settle();
    const spec = this.model.spec;
    const promptIds = promptIdsOf(this.model, req);
    checkTreeShape(req.width, req.depth);
    const kind: DraftKind = isSpeculative(req.mode) ? (req.draft ?? (this.opts.draftUrl ? 'model' : 'none')) : 'none';
    if (kind === 'model') await this.ensureDraft();
    const committed: number[] = [];
    const commitTimes: number[] = [];
    const trips: number[] = [];
    const streamer = this.model.tokenizer?.stream() ?? null;
    const emulation = this.opts.emulation ?? null;
    const draftDevice: DraftDevice = { cost: emulation?.draftMs ?? null, count: { levels: 0, overruns: 0 } };
    let recoveries = 0;
    const t0 = performance.now();
    for (;;) {
      await this.settle();
      const order = [...this.ring.order];
      const request = this.nextRequest++;
      const pipeline = new RingPipeline(this.ring, { numStages: order.length - 1, numSlots: this.numSlots, firstStage: order[1] });
      const lossesBefore = this.losses;
      const before = committed.length;
      this.active = pipeline;
      this.ring.resetStats();
      this.setPhase('generating');
      try {
        const res = await generate(pipeline, {
          mode: req.mode,
          prompt: [...promptIds, ...committed],
          maxNewTokens: req.maxNewTokens - committed.length,
          eosTokens: spec.eosTokenIds,
          sampling: req.sampling,
          source: speculativeSource(kind, this.draft?.stage ?? null, spec.vocabSize, draftDevice),
          ...treeShape(req.width, req.depth),
          request,
          signal: opts.signal,
          onToken: (token, _index, hit) => {
            committed.push(token);
            commitTimes.push(performance.now());
            opts.onToken?.({ token, index: committed.length - 1, text: streamer?.push(token) ?? '', hit });
          },
        });
        trips.push(...pipeline.tripsMs);
        const end = performance.now();
        const [stageStats, hops] = await this.collectStats(order, request, end - t0);
        this.status.hops = hops;
        this.emit();
        const m = mergedMetrics(res.metrics, { promptTokens: promptIds.length, before, t0, end, commitTimes });
        return {
          ...generationReport({
            model: this.model,
            info: this.info,
            promptIds,
            tokens: committed,
            stopReason: res.stopReason,
            metrics: m,
            generateMs: end - t0,
            stageStats,
            hopMs: hopOneWayMs(hops),
            emulation,
            draftCount: draftDevice.count,
          }),
          hops,
          stageStats,
          recoveries,
          ringTripP50Ms: percentile(trips, 0.5),
          ringTripP95Ms: percentile(trips, 0.95),
        };
      } catch (e) {
        trips.push(...pipeline.tripsMs);
        if (this.losses === lossesBefore || this.closed || ++recoveries > MAX_RECOVERIES) throw e;
        this.log(`generation interrupted after ${committed.length} token(s) (${errorMessage(e)}); it continues on the re-formed ring`);
      } finally {
        pipeline.dispose();
        this.active = null;
      }
    }
  }

  /** Waits for a recovery in progress (rethrowing its failure). */
  private async settle(): Promise<void> {
    while (this.recovering) await this.recovering;
    if (this.closed) throw new BadRequestError('the session is closed');
    if (this.status.phase === 'failed') throw this.failure ?? new Error(this.status.error ?? 'the mesh failed');
  }

  private async ensureDraft(): Promise<void> {
    if (this.draft) return;
    if (!this.opts.draftUrl) throw new BadRequestError('no draft model URL was given (open the session with draftUrl, or use the n-gram source)');
    const draft = await loadDraft(urlSource(absoluteUrl(this.opts.draftUrl)), this.model);
    const ctx = await createGpuContext();
    try {
      this.draft = { ctx, stage: await buildDraftStage(ctx, draft, this.numSlots) };
      void ctx.lost.then((e) => {
        if (this.closed) return;
        this.draft = null;
        this.fail(e);
      });
    } catch (e) {
      ctx.device.destroy();
      throw e;
    }
    this.log(`draft model loaded in this tab (${draft.spec.numLayers} layers)`);
  }

  /** Per-stage work and per-hop round trips for `request` (stages that do not answer in time are left out). */
  private async collectStats(order: string[], request: number, wallMs: number): Promise<[StageWork[], HopLatency[]]> {
    const ids = order.slice(1);
    for (const id of ids) this.statsReplies.delete(id);
    await Promise.all(ids.map((id) => this.sendTo(id, { type: 'query', request }).catch(() => undefined)));
    await this.until(() => (ids.every((id) => this.statsReplies.get(id)?.request === request) ? true : undefined), 'stage stats', 3000).catch(() => undefined);
    const replies = ids.flatMap((id) => {
      const r = this.statsReplies.get(id);
      return r?.request === request ? [{ id, reply: r }] : [];
    });
    const roleOf = (id: string): string | null => this.status.stages.find((s) => s.id === id)?.role ?? null;
    const work = stageWork(replies, roleOf, wallMs);
    const hops = ringHops(order, (peer) => this.ring.link(peer)?.stats(), new Map(replies.map((r) => [r.id, r.reply])));
    return [work, hops];
  }

  // ------------------------------------------------------------------ ring, layers, faults

  private attach(): void {
    this.ring.onDirect((from, _bytes, msg) => this.onDirect(from, msg));
    this.ring.on('peer-lost', (e) => this.lose(e.peer, e.message, e));
    this.ring.on('error', (e) => {
      this.status.error = e.message;
      this.log(e.message);
    });
  }

  private onDirect(from: string, msg: MeshMessage): void {
    const view = this.status.stages.find((s) => s.id === from);
    switch (msg.type) {
      case 'info':
        this.infos.set(from, msg);
        break;
      case 'progress':
        if (view) view.load = { done: msg.done, total: msg.total };
        this.emit();
        break;
      case 'loaded':
        this.loadResults.set(from, msg);
        break;
      case 'stats':
        this.statsReplies.set(from, msg);
        break;
      case 'error':
        if (msg.code === 'neighbour-lost') {
          const [peer, ...why] = msg.message.split(' ');
          this.lose(peer, `${this.nameOf(from)} lost its link to it (${why.join(' ')})`);
        }
        else this.lose(from, `${msg.code}: ${msg.message}`);
        break;
      default:
        return;
    }
    this.poke();
  }

  /** Splits the layers over the ring's stages, sends the loads, waits until every stage has loaded. */
  private async assign(): Promise<void> {
    const ids = this.ring.order.slice(1);
    this.setPhase('loading');
    const infos = await this.until(() => (ids.every((id) => this.infos.has(id)) ? ids.map((id) => this.infos.get(id)!) : undefined), 'every stage tab to report its speed', 60_000);
    const weights = this.opts.split === 'equal' ? ids.map(() => 1) : infos.map((i) => Math.max(i.gbps, 1e-3));
    const roles = splitLayersWithin(this.model.spec.numLayers, weights, maxLayersFor(this.model, this.numSlots, infos.map((i) => i.memoryBytes)));
    const load = ++this.loadSeq;
    this.status.stages = ids.map((id, i) => ({
      id, name: this.peerName(id), index: i + 1, role: describeRole(roles[i]), device: infos[i].device, gbps: infos[i].gbps, load: null, weightBytes: 0, loaded: false,
    }));
    this.log(`layers: ${this.status.stages.map((s) => `${s.name}, ${s.gbps?.toFixed(2)} GB/s: ${s.role}`).join('; ')}`);
    const wire = this.opts.wire ?? 'f32';
    const stageCost = this.opts.emulation?.stageMs ?? null;
    await Promise.all(
      ids.map((id, i) => {
        const r = roles[i];
        const msg: MeshMessage = {
          type: 'load', load, modelUrl: this.modelUrl, start: r.layers.start, end: r.layers.end, embed: r.embed, head: r.head, numSlots: this.numSlots, wire,
          hopDelayMs: Math.round(this.opts.hopDelayMs ?? 0), stageFixedMs: stageCost?.fixedMs ?? 0, stagePerRowMs: stageCost?.perRowMs ?? 0,
        };
        return this.sendTo(id, msg);
      }),
    );
    await this.until(() => {
      const done = ids.map((id) => this.loadResults.get(id)).filter((l) => l?.load === load);
      const bad = done.find((l) => l!.error);
      if (bad) throw new Error(`a stage could not load its layers: ${bad.error}`);
      return done.length === ids.length ? true : undefined;
    }, 'the stages to load their layers', 600_000);
    for (const v of this.status.stages) {
      const l = this.loadResults.get(v.id)!;
      v.loaded = true;
      v.weightBytes = l.weightBytes;
    }
    this.setPhase('ready');
    this.log(`ring ready: ${ids.length} stage(s)`);
  }

  /** Sends to a stage on the direct lane; async so that a missing link rejects instead of throwing. */
  private async sendTo(id: string, msg: MeshMessage): Promise<void> {
    return this.ring.sendDirect(id, encodeMessage(msg));
  }

  /** A stage tab is gone or unusable: stop the pipeline and re-form the ring without it. */
  private lose(peer: string, message: string, event?: LinkCloseEvent): void {
    if (this.closed || this.lost.has(peer)) return;
    if (!this.ring?.order.includes(peer) || peer === this.ring.id) {
      this.log(`${this.nameOf(peer)} (not in the ring) left: ${message}`);
      return;
    }
    this.lost.add(peer);
    this.losses++;
    this.lastLoss = `${this.nameOf(peer)} lost${event ? ` (${event.kind})` : ''}: ${message}`;
    this.status.error = this.lastLoss;
    this.log(this.lastLoss);
    this.active?.fail(new StageLostError(this.lastLoss));
    this.poke();
    if (!this.recovering) {
      this.recovering = this.recover()
        .catch((e: unknown) => this.fail(e))
        .finally(() => (this.recovering = null));
    }
  }

  private async recover(): Promise<void> {
    this.setPhase('recovering');
    for (let attempt = 1; ; attempt++) {
      const ids = this.pickStages();
      if (!ids.length) throw new Error('no stage tabs are left in the room: open a stage tab and start again');
      const losses = this.losses;
      try {
        this.log(`re-forming the ring with ${ids.length} stage(s)`);
        await this.ring.reform(ids, 30_000);
        await this.assign();
        return;
      } catch (e) {
        // Another tab lost meanwhile: try again without it.
        if (this.losses === losses || attempt >= MAX_RECOVERIES) throw e;
      }
    }
  }

  /** The ring's stages that are still there, in order, then spare stage tabs; as many as asked for. */
  private pickStages(): string[] {
    const alive = (id: string): boolean => !this.lost.has(id) && this.signal.peers.get(id)?.meta.role === 'stage';
    const kept = this.ring.order.slice(1).filter(alive);
    const spare = [...this.signal.peers.keys()].filter((id) => alive(id) && !kept.includes(id));
    return [...kept, ...spare].slice(0, this.opts.stages);
  }

  /** Resolves with get()'s first defined value; rejects on a loss, on close, on timeout, or if get throws. */
  private until<T>(get: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    const losses = this.losses;
    return new Promise<T>((resolve, reject) => {
      const finish = (err: Error | null, v?: T): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (err) reject(err);
        else resolve(v as T);
      };
      const check = (): void => {
        if (this.losses !== losses) return finish(new StageLostError(this.lastLoss));
        if (this.closed) return finish(new Error('the session was closed'));
        try {
          const v = get();
          if (v !== undefined) finish(null, v);
        } catch (e) {
          finish(e instanceof Error ? e : new Error(String(e)));
        }
      };
      const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`)), timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  private poke(): void {
    for (const w of [...this.waiters]) w();
  }

  // ------------------------------------------------------------------ status

  /** "name (id)" for logs; the name is remembered from the ring, as a lost tab has left the room. */
  private nameOf(id: string): string {
    const name = this.status.stages.find((s) => s.id === id)?.name ?? this.peerName(id);
    return name === id ? id : `${name} (${id})`;
  }

  private peerName(id: string): string {
    const name = this.signal.peers.get(id)?.meta.name;
    return typeof name === 'string' && name ? name : id;
  }

  private fail(e: unknown): void {
    this.failure = e instanceof Error ? e : new Error(String(e));
    this.status.error = errorMessage(e);
    this.log(`failed: ${this.status.error}`);
    if (!this.closed) this.setPhase('failed');
  }

  private setPhase(phase: MeshPhase): void {
    this.status.phase = phase;
    this.emit();
  }

  private log(line: string): void {
    this.status.log.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
    if (this.status.log.length > 200) this.status.log.shift();
    console.info(`[mesh] ${line}`);
    this.emit();
  }

  private emit(): void {
    this.opts.onStatus?.(structuredClone(this.status));
  }
}

/**
 * Layers each stage can hold in its memory (unknown memory: all of them), from the tensors' sizes in
 * the model's files plus the KV slots of a layer; stage 1 also holds the embedding, the last the head.
 */
function maxLayersFor(model: LoadedModel, numSlots: number, memoryBytes: number[]): number[] {
  const { spec, tensorIndex } = model;
  const bytes = (role: StageRole): number => tensorNamesForRole(spec, role).reduce((a, n) => a + (tensorIndex.tensors.get(n)?.end ?? 0) - (tensorIndex.tensors.get(n)?.start ?? 0), 0);
  const perLayer = bytes({ layers: { start: 0, end: 1 }, embed: false, head: false }) + numSlots * 2 * spec.numKvHeads * spec.headDim * 4;
  const first = bytes({ layers: { start: 0, end: 0 }, embed: true, head: false });
  const last = bytes({ layers: { start: 0, end: 0 }, embed: false, head: true });
  return memoryBytes.map((m, i) => {
    if (!m) return spec.numLayers;
    const fixed = (i === 0 ? first : 0) + (i === memoryBytes.length - 1 ? last : 0);
    return Math.max(0, Math.floor((m - fixed) / perLayer));
  });
}

function absoluteUrl(url: string): string {
  return typeof location === 'undefined' ? url : new URL(url, location.href).href;
}

