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
import { loadModel, modelSource, tensorNamesForRole, type LoadedModel } from '../model/index.ts';
import type { ModelSpec, StageRole } from '../model/types.ts';
import { createGpuContext } from '../gpu/device.ts';
import { describeRole, splitLayersWithin } from '../pipeline/layers.ts';
import { RingPipeline } from '../mesh/ring-pipeline.ts';
import { generate } from '../speculative/scheduler.ts';
import { percentile } from '../common/numerics.ts';
import { BadRequestError, SpecpipeError, errorMessage } from '../common/errors.ts';
import { speculativeSource, type DraftDevice } from './draft.ts';
import { loadDraftModel, type HeldDraft } from './draft-remote.ts';
import { generationReport, promptIdsOf } from './generation.ts';
import { planRecovery, type PlacedStage, type RecoveryPlan } from './recovery-plan.ts';
import { startStageNode, type StageNode } from './stage-node.ts';
import { hopOneWayMs, mergedMetrics, ringHops, stageWork, type StatsReply } from './mesh-report.ts';
import type { HopLatency, MeshOpenOptions, MeshPhase, MeshRunOptions, MeshRunReport, MeshStatus, RecoveryReport, StageWork } from './mesh-types.ts';

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
type Resumed = Extract<MeshMessage, { type: 'resumed' }>;

const MAX_RECOVERIES = 5;

export class MeshSession {
  readonly status: MeshStatus;
  private ring!: Ring;
  private readonly modelUrl: string;
  private readonly infos = new Map<string, Info>();
  private readonly loadResults = new Map<string, Loaded>();
  private readonly statsReplies = new Map<string, StatsReply>();
  /** Each stage's report on a resumed request's prefill (partial recovery), by "request stage-id". */
  private readonly resumedReplies = new Map<string, Resumed>();
  /** The ring as last loaded: stage tabs in order with their layers (what partial recovery keeps). */
  private placed: PlacedStage[] = [];
  /** The last recovery's plan (null: the layers were split afresh) and when the loss was noticed. */
  private lastPlan: RecoveryPlan | null = null;
  private lossAt = 0;
  /** Positions the first generation may skip (a reloaded leader resuming; see MeshOpenOptions.resume). */
  private resumeKeep = 0;
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
  /** The draft model: in its own Worker and device where the page allows, else on a device of this tab. */
  private draft: HeldDraft | null = null;
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
    const model = await loadModel(modelSource(absoluteUrl(opts.modelUrl)));
    const signal = await SignalClient.connect({ room: opts.room, secret: opts.secret, url: opts.signalUrl, meta: { role: 'leader', name: opts.name ?? 'leader' } });
    const session = new MeshSession(opts, model, signal);
    const onAbort = (): void => session.close();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (opts.signal?.aborted) throw new Error('aborted');
      session.log(`waiting for ${opts.stages} stage tab(s) in room "${opts.room}"`);
      // A reloaded leader takes its stage tabs back in their order, with their layers (and KV).
      const adopt = opts.resume?.ring.length ? await session.adoptable(opts.resume.ring) : null;
      session.resumeKeep = adopt ? (opts.resume?.keep ?? 0) : 0;
      const lead = Ring.lead(signal, { stages: adopt ? adopt.map((s) => s.id) : opts.stages, hopDelayMs: opts.hopDelayMs, name: opts.name, ...opts.tuning, formTimeoutMs: opts.waitMs ?? 600_000 });
      lead.then((r) => session.closed && r.close('the session was closed'), () => undefined);
      session.ring = await Promise.race([lead, session.whenClosed(), session.holdStage()]);
      session.attach();
      await session.assign(adopt?.map((s) => s.role));
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
    this.draft?.destroy();
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
    checkTreeShape(req.width, req.depth, req.branchRatio);
    const kind: DraftKind = isSpeculative(req.mode) ? (req.draft ?? (this.opts.draftUrl ? 'model' : 'none')) : 'none';
    if (kind === 'model') await this.ensureDraft();
    const committed: number[] = [];
    const commitTimes: number[] = [];
    const trips: number[] = [];
    const streamer = this.model.tokenizer?.stream() ?? null;
    const emulation = this.opts.emulation ?? null;
    const draftDevice: DraftDevice = { cost: emulation?.draftMs ?? null, count: { levels: 0, overruns: 0 } };
    let recoveries = 0;
    const recoveryLog: RecoveryReport[] = [];
    const tokensBeforeLoss: number[][] = [];
    /** Per recovery: the request that resumed the generation and its ring (their stages report their prefill). */
    const resumedBy: { order: string[]; request: number }[] = [];
    /** The recovery whose first committed token is still to come. */
    let pending: { report: RecoveryReport; lostAt: number } | null = null;
    const t0 = performance.now();
    for (;;) {
      await this.settle();
      const order = [...this.ring.order];
      const request = this.nextRequest++;
      // After a loss the request resumes: the committed positions but the last (the root, which
      // must be computed for its token) are those the stages may still hold.
      const keep = recoveries > 0 ? promptIds.length + committed.length - 1 : Math.min(this.resumeKeep, promptIds.length - 1);
      this.resumeKeep = 0;
      if (pending) {
        pending.report.plan = this.lastPlan?.moves.join('; ') ?? 'layers split afresh over the stages left';
        resumedBy[recoveryLog.length - 1] = { order, request };
      }
      const pipeline = new RingPipeline(this.ring, { numStages: order.length - 1, numSlots: this.numSlots, firstStage: order[1], keep });
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
          source: speculativeSource(kind, this.draft?.compute ?? null, spec.vocabSize, draftDevice),
          ...treeShape(req.width, req.depth, req.branchRatio),
          request,
          signal: opts.signal,
          onToken: (token, _index, hit) => {
            committed.push(token);
            commitTimes.push(performance.now());
            if (pending) {
              pending.report.recoveryMs = performance.now() - pending.lostAt;
              pending = null;
            }
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
          recoveryLog: recoveryLog.map((r, i) => ({ ...r, tokensLost: lostTokens(tokensBeforeLoss[i], committed), stages: resumedBy[i] ? this.resumedStages(resumedBy[i].order, resumedBy[i].request) : [] })),
          ring: structuredClone(this.status.stages),
          ringTripP50Ms: percentile(trips, 0.5),
          ringTripP95Ms: percentile(trips, 0.95),
        };
      } catch (e) {
        trips.push(...pipeline.tripsMs);
        if (this.losses === lossesBefore || this.closed || ++recoveries > MAX_RECOVERIES) throw e;
        this.log(`generation interrupted after ${committed.length} token(s) (${errorMessage(e)}); it continues on the re-formed ring`);
        const report: RecoveryReport = { lost: this.lastLoss, atToken: committed.length, tokensLost: 0, recoveryMs: null, plan: '', stages: [] };
        recoveryLog.push(report);
        tokensBeforeLoss.push([...committed]);
        pending = { report, lostAt: this.lossAt };
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
    const held = await loadDraftModel(absoluteUrl(this.opts.draftUrl), this.model, this.numSlots, {
      device: async () => ({ ctx: await createGpuContext(), owned: true }),
      backend: this.opts.draftBackend,
    });
    this.draft = held;
    void held.failed.then((e) => {
      if (this.closed || this.draft !== held) return;
      this.draft = null;
      this.fail(e);
    });
    this.log(`draft model loaded in ${held.where}`);
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
      case 'resumed':
        this.resumedReplies.set(`${msg.request} ${from}`, msg);
        this.log(`${this.nameOf(from)} resumed request ${msg.request}: ${msg.kept} of ${msg.keep} committed positions kept, ${msg.prefilled} prefilled again (${msg.ms.toFixed(0)} ms)`);
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

  /**
   * Splits the layers over the ring's stages (or takes a recovery's `planned` layers, where they fit
   * every stage's memory), sends the loads, waits until every stage has loaded.
   */
  private async assign(planned?: StageRole[]): Promise<void> {
    const ids = this.ring.order.slice(1);
    this.setPhase('loading');
    const infos = await this.until(() => (ids.every((id) => this.infos.has(id)) ? ids.map((id) => this.infos.get(id)!) : undefined), 'every stage tab to report its speed', 60_000);
    const weights = this.opts.split === 'equal' ? ids.map(() => 1) : infos.map((i) => Math.max(i.gbps, 1e-3));
    const maxLayers = maxLayersFor(this.model, this.numSlots, infos.map((i) => i.memoryBytes));
    const fits = planned?.length === ids.length && planned.every((r, i) => r.layers.end - r.layers.start <= maxLayers[i]);
    if (planned && !fits) {
      this.lastPlan = null;
      this.log('the recovery plan does not fit the stages\' memory: the layers are split afresh');
    }
    const roles = fits ? planned : splitLayersWithin(this.model.spec.numLayers, weights, maxLayers);
    const load = ++this.loadSeq;
    this.status.stages = ids.map((id, i) => ({
      id, name: this.peerName(id), index: i + 1, role: describeRole(roles[i]), device: infos[i].device, gbps: infos[i].gbps, load: null, weightBytes: 0,
      kvBytes: (roles[i].layers.end - roles[i].layers.start) * kvBytesPerLayer(this.model.spec, this.numSlots), memoryBytes: infos[i].memoryBytes || null, loaded: false,
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
    this.placed = ids.map((id, i) => ({ id, role: roles[i] }));
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
    this.lossAt = performance.now();
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
      // Partial recovery: the stages left keep their layers (and KV); only the lost layers move.
      const plan = this.planRecovery();
      this.lastPlan = plan;
      const ids = plan?.ids ?? this.pickStages();
      if (!ids.length) throw new Error('no stage tabs are left in the room: open a stage tab and start again');
      const losses = this.losses;
      try {
        this.log(`re-forming the ring with ${ids.length} stage(s)${plan ? `: ${plan.moves.join('; ')}; the other stages keep their layers and KV` : ''}`);
        await this.ring.reform(ids, 30_000);
        await this.assign(plan?.roles);
        return;
      } catch (e) {
        // Another tab lost meanwhile: try again without it.
        if (this.losses === losses || attempt >= MAX_RECOVERIES) throw e;
      }
    }
  }

  /** The ring's stages that are still there, in order, then spare stage tabs; as many as asked for. */
  private pickStages(): string[] {
    const kept = this.ring.order.slice(1).filter((id) => this.alive(id));
    return [...kept, ...this.spares(kept)].slice(0, this.opts.stages);
  }

  /** The ring as loaded: stage tabs in order with their layers (what a reloaded leader takes back). */
  get layout(): PlacedStage[] {
    return structuredClone(this.placed);
  }

  /** `ring` if all its stage tabs are in the room within a few seconds, else null (said in the log). */
  private async adoptable(ring: PlacedStage[]): Promise<PlacedStage[] | null> {
    const present = (): boolean => ring.every((s) => this.signal.peers.get(s.id)?.meta.role === 'stage');
    for (let i = 0; i < 50 && !present() && !this.closed; i++) await new Promise((r) => setTimeout(r, 100));
    if (present()) {
      this.log(`taking back ${ring.length} stage tab(s) of the previous leader, with their layers`);
      return ring;
    }
    this.log('the previous leader\'s stage tabs are not all in the room: the layers are split afresh');
    return null;
  }

  /** The last loaded ring without its lost stages, their layers moved (null when none is left, or nothing was loaded). */
  private planRecovery(): RecoveryPlan | null {
    if (!this.placed.length) return null;
    const lost = new Set(this.placed.filter((s) => !this.alive(s.id)).map((s) => s.id));
    return planRecovery(this.placed, lost, this.spares(this.placed.map((s) => s.id)), (id) => this.nameOf(id));
  }

  private alive(id: string): boolean {
    return !this.lost.has(id) && this.signal.peers.get(id)?.meta.role === 'stage';
  }

  /** Stage tabs in the room, in join order, that are not in `ring` and not lost. */
  private spares(ring: readonly string[]): string[] {
    return [...this.signal.peers.keys()].filter((id) => this.alive(id) && !ring.includes(id));
  }

  /** What each stage of `order` reported on resumed `request` (stages that did not report are left out). */
  private resumedStages(order: readonly string[], request: number): RecoveryReport['stages'] {
    return order.slice(1).flatMap((id) => {
      const r = this.resumedReplies.get(`${request} ${id}`);
      const view = this.status.stages.find((s) => s.id === id);
      return r?.request === request ? [{ name: view?.name ?? id, role: view?.role ?? '?', kept: r.kept, prefilled: r.prefilled, ms: r.ms }] : [];
    });
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
  const perLayer = bytes({ layers: { start: 0, end: 1 }, embed: false, head: false }) + kvBytesPerLayer(spec, numSlots);
  const first = bytes({ layers: { start: 0, end: 0 }, embed: true, head: false });
  const last = bytes({ layers: { start: 0, end: 0 }, embed: false, head: true });
  return memoryBytes.map((m, i) => {
    if (!m) return spec.numLayers;
    const fixed = (i === 0 ? first : 0) + (i === memoryBytes.length - 1 ? last : 0);
    return Math.max(0, Math.floor((m - fixed) / perLayer));
  });
}

/** Bytes of one layer's K and V slot pools on a stage (f32, as src/gpu/stage.ts allocates them). */
function kvBytesPerLayer(spec: ModelSpec, numSlots: number): number {
  return numSlots * 2 * spec.numKvHeads * spec.headDim * 4;
}

/** Tokens committed before a loss that the output no longer begins with (0 when nothing was lost). */
function lostTokens(before: readonly number[], after: readonly number[]): number {
  let same = 0;
  while (same < before.length && before[same] === after[same]) same++;
  return before.length - same;
}

function absoluteUrl(url: string): string {
  return typeof location === 'undefined' ? url : new URL(url, location.href).href;
}

