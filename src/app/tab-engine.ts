// The Engine with every stage in this tab: the target split into local stages on this tab's GPU
// device (chained in memory), plus the draft model or the n-gram source for specpipe/tree. Kept
// across generations; the chat page, `npm run generate`, the demo and the bench use it.
import { loadModel, modelSource, type LoadedModel, type ModelSource } from '../model/index.ts';
import type { QuantFormat, StageRole } from '../model/types.ts';
import { createGpuContext, type GpuContext } from '../gpu/device.ts';
import { buildStageOn, type ComputeStage } from '../pipeline/gpu-stages.ts';
import { splitLayers, describeRole } from '../pipeline/layers.ts';
import { LocalPipeline } from '../pipeline/local-pipeline.ts';
import type { LevelPacket, Pipeline, ResultPacket } from '../pipeline/contract.ts';
import { generate } from '../speculative/scheduler.ts';
import { BadRequestError } from '../common/errors.ts';
import type { DeviceEmulation } from '../common/device-emulation.ts';
import { speculativeSource, type DraftDevice } from './draft.ts';
import { loadDraftModel, type HeldDraft } from './draft-remote.ts';
import { DEFAULT_MAX_CONTEXT, checkTreeShape, isSpeculative, kvSlotsFor, treeShape } from './modes.ts';
import { generationReport, promptIdsOf } from './generation.ts';
import { planBackends } from './backend.ts';
import type { BackendSetting, StageBackend } from '../pipeline/backend.ts';
import {
  TokenStream,
  type Engine,
  type EngineInfo,
  type EnginePhase,
  type GenerateCallOptions,
  type Generation,
  type GenerationReport,
  type GenerationRequest,
  type LoadOptions,
  type TokenEvent,
} from './engine.ts';

/** A model by URL (a folder with config.json, absolute or relative to the page) or any ModelSource. */
export type ModelLocation = string | ModelSource;

/** What a tab engine loads: the target, an optional draft, how many stages, how long a context. */
export interface TabEngineOptions {
  model: ModelLocation;
  /** The draft model for specpipe/tree (it must share the target's tokenizer). */
  draft?: ModelLocation | null;
  /** Target stages in this tab (default 1: all layers in one stage). */
  stages?: number;
  /** Longest prompt + output the KV cache holds (default min(model maximum, 1024)). */
  maxContext?: number;
  /**
   * Emulate dedicated devices (default: off, real compute): each stage's level takes at least
   * stageMs, each draft forward at least draftMs; reports count overruns. See common/device-emulation.ts.
   */
  emulation?: DeviceEmulation | null;
  /**
   * Quantize the target's projection matrices (q/k/v/o, gate/up/down) to GGML Q8_0 or Q4_0 blocks
   * as each stage loads its layers (cached quantized, so a reload does not quantize again); the
   * embedding, norms and LM head stay as stored. Default: none.
   */
  quant?: QuantFormat;
  /**
   * What computes the target's stages: 'webgpu' (default), 'wasm' (the CPU backend, src/cpu),
   * 'auto' (measure both at load, take the faster; the report's adapter says which and why), or
   * one backend per stage (a mix in one tab, e.g. ['webgpu', 'wasm']).
   */
  backend?: BackendSetting;
  /** What computes the draft model (default: wasm when every stage runs on wasm, else webgpu; in its own worker when given by URL in a page). */
  draftBackend?: StageBackend;
  /** CPU backend: threads per matmul (Workers over a shared memory) where the page is cross-origin isolated; default 1. */
  wasmThreads?: number;
  /** Called whenever the phase changes (e.g. to 'failed' when the GPU device is lost). */
  onPhase?: (phase: EnginePhase, error: Error | null) => void;
}

interface Loaded {
  ctx: GpuContext;
  model: LoadedModel;
  roles: StageRole[];
  stages: ComputeStage[];
  /** The draft model: in a Worker with its own device when given by URL in a page, else on this tab's. */
  draft: HeldDraft | null;
  numSlots: number;
  info: EngineInfo;
}

/** The Engine with every stage in this tab (see the top of this file). */
export class TabEngine implements Engine {
  readonly placement = 'tab';
  phase: EnginePhase = 'idle';
  /** Why the engine failed (phase 'failed'), or null. */
  error: Error | null = null;
  private loaded: Loaded | null = null;

  constructor(private readonly opts: TabEngineOptions) {
    const stages = opts.stages ?? 1;
    if (!Number.isInteger(stages) || stages < 1) throw new BadRequestError('stages must be a whole number >= 1');
  }

  get info(): EngineInfo | null {
    return this.loaded?.info ?? null;
  }

  /** The loaded target (spec, tokenizer, source); null before load(). */
  get model(): LoadedModel | null {
    return this.loaded?.model ?? null;
  }

  get numStages(): number {
    return this.opts.stages ?? 1;
  }

  /** Reads the target's config and tokenizer, uploads its stages (and the draft) to a new GPU device. */
  async load(o: LoadOptions = {}): Promise<EngineInfo> {
    if (this.phase !== 'idle') throw new BadRequestError(`load() was already called (phase ${this.phase})`);
    this.setPhase('loading');
    const t0 = performance.now();
    let ctx: GpuContext | null = null;
    const built: ComputeStage[] = [];
    let draft: HeldDraft | null = null;
    try {
      const model = await described('target', this.opts.model, () => loadModel(sourceOf(this.opts.model), { signal: o.signal }));
      const numSlots = kvSlotsFor(Math.min(model.spec.maxPositions, this.opts.maxContext ?? DEFAULT_MAX_CONTEXT), this.numStages);
      ctx = await createGpuContext();
      const backends = await planBackends(this.opts.backend ?? 'webgpu', this.numStages, ctx, this.opts.wasmThreads);
      const roles = splitLayers(model.spec.numLayers, new Array(this.numStages).fill(1));
      for (const [i, role] of roles.entries()) {
        const part = roles.length === 1 ? 'target' : `stage ${i + 1}/${roles.length}`;
        built.push(await buildStageOn(backends.backends[i], ctx, model, role, { numSlots, quant: this.opts.quant, threads: this.opts.wasmThreads, signal: o.signal, onProgress: (done, total) => o.onProgress?.({ part, done, total }) }));
      }
      const draftAt = this.opts.draft;
      const tabCtx = ctx;
      draft = draftAt
        ? await described('draft', draftAt, () =>
            loadDraftModel(typeof draftAt === 'string' ? absoluteUrl(draftAt) : draftAt, model, numSlots, {
              // By default the draft follows the stages onto the CPU backend when they all chose it.
              backend: this.opts.draftBackend ?? (backends.backends.every((b) => b === 'wasm') ? 'wasm' : 'webgpu'),
              device: async () => ({ ctx: tabCtx, owned: false }),
              signal: o.signal,
              onProgress: (done, total) => o.onProgress?.({ part: 'draft', done, total }),
            }),
          )
        : null;
      const held = draft;
      if (held && held.failed !== ctx.lost) void held.failed.then((e) => this.fail(e)); // a draft in its own worker
      const info: EngineInfo = {
        spec: model.spec,
        tokenizer: model.tokenizer,
        stages: roles.map(describeRole),
        adapter: backends.adapter,
        weightBytes: built.reduce((a, s) => a + s.weightBytes, 0),
        loadMs: performance.now() - t0,
      };
      this.loaded = { ctx, model, roles, stages: built, draft, numSlots, info };
      if ((this.phase as EnginePhase) === 'closed') throw new DOMException('the engine was disposed while loading', 'AbortError');
      void ctx.lost.then((e) => this.fail(e));
      this.setPhase('ready');
      return info;
    } catch (e) {
      for (const s of built) s.destroy();
      draft?.destroy();
      ctx?.device.destroy();
      this.loaded = null;
      if ((this.phase as EnginePhase) !== 'closed') this.setPhase(o.signal?.aborted ? 'closed' : 'failed', e);
      throw e;
    }
  }

  generate(req: GenerationRequest, opts: GenerateCallOptions = {}): Generation {
    return new TokenStream((emit) => this.run(req, opts, emit));
  }

  dispose(): void {
    if (this.phase === 'closed') return;
    const l = this.loaded;
    this.loaded = null;
    this.setPhase('closed');
    if (!l) return;
    for (const s of l.stages) s.destroy();
    l.draft?.destroy();
    l.ctx.device.destroy();
  }

  private async run(req: GenerationRequest, o: GenerateCallOptions, emit: (e: TokenEvent) => void): Promise<GenerationReport> {
    const l = this.ready();
    const { model, stages, roles } = l;
    const promptIds = promptIdsOf(model, req);
    if (o.dumpLogits && isSpeculative(req.mode)) throw new BadRequestError('logits can be dumped with mode single or pp');
    if (req.mode === 'single' && stages.length !== 1) throw new BadRequestError(`mode single needs a one-stage engine (this one has ${stages.length})`);
    checkTreeShape(req.width, req.depth, req.branchRatio);
    this.setPhase('generating');
    try {
      for (const s of stages) s.kv.reset();
      const emulation = this.opts.emulation ?? null;
      const local = new LocalPipeline(stages.map((compute, i) => ({ compute, role: roles[i], cost: emulation?.stageMs })), l.numSlots);
      const draftDevice: DraftDevice = { cost: emulation?.draftMs ?? null, count: { levels: 0, overruns: 0 } };
      if (o.onPacket) local.onPacket = o.onPacket;
      const logitsByPosition = new Map<number, Float32Array>();
      const pipeline = o.dumpLogits ? tapLogits(local, logitsByPosition) : local;
      const streamer = model.tokenizer?.stream() ?? null;
      const t0 = performance.now();
      try {
        const result = await generate(pipeline, {
          mode: req.mode,
          prompt: promptIds,
          maxNewTokens: req.maxNewTokens,
          eosTokens: model.spec.eosTokenIds,
          sampling: req.sampling,
          source: isSpeculative(req.mode) ? speculativeSource(req.draft, l.draft?.compute ?? null, model.spec.vocabSize, draftDevice) : null,
          ...treeShape(req.width, req.depth, req.branchRatio),
          signal: o.signal,
          onToken: (token, index, hit) => {
            const e: TokenEvent = { token, index, text: streamer?.push(token) ?? '', hit };
            emit(e);
            o.onToken?.(e);
          },
        });
        const report = generationReport({
          model,
          info: l.info,
          promptIds,
          tokens: result.tokens,
          stopReason: result.stopReason,
          metrics: result.metrics,
          generateMs: performance.now() - t0,
          stageStats: local.stats,
          hopMs: 0, // stages in one tab: no hops
          emulation,
          draftCount: draftDevice.count,
        });
        if (o.dumpLogits) report.logits = collectLogits(logitsByPosition, promptIds.length, Math.min(o.dumpLogits, result.tokens.length));
        return report;
      } finally {
        // The final verdict is still travelling: it must not land on the next run's fresh KV.
        await local.drained();
      }
    } catch (e) {
      throw this.error ?? e;
    } finally {
      if (this.phase === 'generating') this.setPhase('ready');
    }
  }

  private ready(): Loaded {
    if (this.phase === 'failed' && this.error) throw this.error;
    if (this.phase === 'generating') throw new BadRequestError('a generation is already running on this engine');
    if (!this.loaded || this.phase !== 'ready') throw new BadRequestError(this.phase === 'closed' ? 'the engine was disposed' : 'call load() first');
    return this.loaded;
  }

  private fail(e: Error): void {
    if (this.phase !== 'closed') this.setPhase('failed', e);
  }

  private setPhase(phase: EnginePhase, cause?: unknown): void {
    this.phase = phase;
    if (phase === 'failed') this.error = cause instanceof Error ? cause : new Error(String(cause));
    this.opts.onPhase?.(phase, phase === 'failed' ? this.error : null);
  }
}

/** Runs a model load; a failure says which model and where, keeping the error's type. */
async function described<T>(what: string, at: ModelLocation, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    if (e instanceof Error && e.name !== 'AbortError') e.message = `Could not load the ${what} model from ${typeof at === 'string' ? at : at.description}: ${e.message}`;
    throw e;
  }
}

function sourceOf(m: ModelLocation): ModelSource {
  return typeof m === 'string' ? modelSource(absoluteUrl(m)) : m;
}

/** A model URL resolved against the page (the bundled models are relative). */
function absoluteUrl(url: string): string {
  if (url.trim() === '') throw new BadRequestError('the model URL is empty');
  const base = typeof location !== 'undefined' ? location.href : undefined;
  return new URL(url.trim(), base).href;
}

/** Wraps a pipeline to ask the last stage for every row's logits and keep them by position. */
function tapLogits(inner: Pipeline, byPosition: Map<number, Float32Array>): Pipeline {
  const positionOf = new Map<number, number>();
  return {
    get numStages() {
      return inner.numStages;
    },
    get numSlots() {
      return inner.numSlots;
    },
    begin: (c) => inner.begin(c),
    credit: () => inner.credit(),
    send(level: LevelPacket) {
      for (const r of level.rows) positionOf.set(r.node, r.position);
      inner.send({ ...level, logitsRows: level.rows.map((_, i) => i) });
    },
    onResult(handler: (r: ResultPacket) => void) {
      return inner.onResult((r) => {
        if (r.logits) {
          const V = r.logits.length / Math.max(1, r.logitsRows.length);
          r.logitsRows.forEach((node, i) => byPosition.set(positionOf.get(node)!, r.logits!.slice(i * V, (i + 1) * V)));
        }
        handler(r);
      });
    },
    waitForProgress: (s) => inner.waitForProgress(s),
    stepCount: () => inner.stepCount(),
  };
}

function collectLogits(byPosition: Map<number, Float32Array>, promptLength: number, count: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < count; i++) {
    const l = byPosition.get(promptLength - 1 + i);
    if (!l) throw new Error(`no logits recorded for generated token ${i}`);
    out.push(Array.from(l));
  }
  return out;
}
