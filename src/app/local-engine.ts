// A model loaded into this tab's GPU, kept across generations: the target split into local stages,
// plus the speculative source. runLocal (one-shot CLI runs), the chat page and the bench share it.
import { loadModel, urlSource, type LoadedModel } from '../model/index.ts';
import type { ModelSpec } from '../model/types.ts';
import { createGpuContext, type GpuContext } from '../gpu/device.ts';
import type { Stage } from '../gpu/stage.ts';
import type { StageRole } from '../model/types.ts';
import { buildStage } from '../pipeline/gpu-stages.ts';
import { splitLayers, describeRole } from '../pipeline/layers.ts';
import { LocalPipeline } from '../pipeline/local-pipeline.ts';
import type { PacketTrace } from '../pipeline/stage-runner.ts';
import type { Pipeline } from '../pipeline/contract.ts';
import { generate, type GenerateOptions, type GenerateResult } from '../speculative/scheduler.ts';
import { DraftModelSource, type DraftModel } from '../speculative/draft-source.ts';
import { NgramSource } from '../speculative/ngram-source.ts';
import type { SpeculativeSource } from '../speculative/source.ts';
import type { DraftKind } from './modes.ts';

export type { DraftKind } from './modes.ts';

/** Bytes of weights uploaded so far, per part being loaded ("stage 1/4", "draft"). */
export type LoadProgress = (part: string, done: number, total: number) => void;

export interface EngineOptions {
  /** Target stages in this tab (1 = all layers in one stage). */
  stages: number;
  /** KV slots per stage: the longest text plus the in-flight tree (see reservedSlots). */
  numSlots: number;
  /** The draft model (already loaded: spec, tokenizer-less) when speculation uses one. */
  draft?: LoadedModel | null;
  onProgress?: LoadProgress;
  signal?: AbortSignal;
}

export type EngineRunOptions = Omit<GenerateOptions, 'source'> & {
  /** Which speculative source specpipe/tree use (default: the draft model if loaded, else none). */
  draft?: DraftKind;
  /** Observes every packet each stage computes (the pipeline picture). */
  onPacket?: (stage: number, p: PacketTrace) => void;
  /** Wraps the pipeline before generation (e.g. to tap logits). */
  wrap?: (p: Pipeline) => Pipeline;
};

export class LocalEngine {
  private destroyed = false;

  private constructor(
    readonly ctx: GpuContext,
    readonly model: LoadedModel,
    readonly roles: StageRole[],
    private readonly stages: Stage[],
    private readonly draftStage: Stage | null,
    readonly numSlots: number,
  ) {}

  /** Uploads the target's stages (and the draft) to a new GPU device in this tab. */
  static async create(model: LoadedModel, opts: EngineOptions): Promise<LocalEngine> {
    const draft = opts.draft ?? null;
    if (draft && draft.spec.vocabSize !== model.spec.vocabSize) {
      throw new Error(`draft vocabulary ${draft.spec.vocabSize} differs from the target's ${model.spec.vocabSize}: they must share a tokenizer`);
    }
    const ctx = await createGpuContext();
    const roles = splitLayers(model.spec.numLayers, new Array(opts.stages).fill(1));
    const built: Stage[] = [];
    try {
      for (const [i, role] of roles.entries()) {
        const part = roles.length === 1 ? 'target' : `stage ${i + 1}/${roles.length}`;
        built.push(await buildStage(ctx, model, role, { numSlots: opts.numSlots, signal: opts.signal, onProgress: (d, t) => opts.onProgress?.(part, d, t) }));
      }
      let draftStage: Stage | null = null;
      if (draft) {
        const role: StageRole = { layers: { start: 0, end: draft.spec.numLayers }, embed: true, head: true };
        draftStage = await buildStage(ctx, draft, role, { numSlots: opts.numSlots, signal: opts.signal, onProgress: (d, t) => opts.onProgress?.('draft', d, t) });
        built.push(draftStage);
      }
      return new LocalEngine(ctx, model, roles, built.slice(0, roles.length), draftStage, opts.numSlots);
    } catch (e) {
      for (const s of built) s.destroy();
      ctx.device.destroy();
      throw e;
    }
  }

  get numStages(): number {
    return this.roles.length;
  }

  get stageDescriptions(): string[] {
    return this.roles.map(describeRole);
  }

  get adapter(): string {
    return this.ctx.description;
  }

  /** Bytes of target weights on the GPU, all stages. */
  get weightBytes(): number {
    return this.stages.reduce((a, s) => a + s.weightBytes, 0);
  }

  get hasDraft(): boolean {
    return this.draftStage !== null;
  }

  /**
   * One generation over fresh KV state. Returns the pipeline's per-stage stats with the result
   * (busy time per stage: compute, as opposed to waiting).
   */
  async run(o: EngineRunOptions): Promise<GenerateResult & { stageBusyMs: number[] }> {
    if (this.destroyed) throw new Error('the model was unloaded');
    for (const s of this.stages) s.kv.reset();
    const local = new LocalPipeline(
      this.stages.map((compute, i) => ({ compute, role: this.roles[i] })),
      this.numSlots,
    );
    if (o.onPacket) local.onPacket = o.onPacket;
    const pipeline = o.wrap ? o.wrap(local) : local;
    try {
      const result = await generate(pipeline, { ...o, source: this.sourceFor(o.draft) });
      return { ...result, stageBusyMs: local.stats.map((s) => s.busyMs) };
    } finally {
      // The final verdict is still travelling: it must not land on the next run's fresh KV.
      await local.drained();
    }
  }

  private sourceFor(kind: DraftKind | undefined): SpeculativeSource | null {
    return speculativeSource(kind, this.draftStage, this.model.spec.vocabSize);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const s of this.stages) s.destroy();
    this.draftStage?.destroy();
    this.ctx.device.destroy();
  }
}

/** The source a run asks for (default: the draft model if one is loaded, else none). */
export function speculativeSource(kind: DraftKind | undefined, draftStage: Stage | null, vocabSize: number): SpeculativeSource | null {
  const k = kind ?? (draftStage ? 'model' : 'none');
  if (k === 'ngram') return new NgramSource();
  if (k === 'none') return null;
  if (!draftStage) throw new Error('no draft model is loaded (load one, or use the n-gram source)');
  return new DraftModelSource(draftModelOf(draftStage, vocabSize));
}

/** A whole-model Stage as the draft source's model (greedy rows: the source only reads logits). */
export function draftModelOf(stage: Stage, vocabSize: number): DraftModel {
  return {
    vocabSize,
    forward: (rows) => stage.forward({ ...rows, sampling: Array.from(rows.positions, () => GREEDY_ROW) }),
    commitSlots: (s) => stage.kv.commit(s),
    releaseSlots: (s) => stage.kv.release(s),
    resetSlots: () => stage.kv.reset(),
  };
}

const GREEDY_ROW = { temperature: 0, topK: 0, topP: 1, uniform: 0 };

/**
 * Loads a target (and an optional draft) by URL into a new engine; `numSlots` sizes the KV cache
 * from the target's spec. For headless runs (demo, bench) that keep one model for many runs.
 */
export async function openEngine(o: { modelUrl: string; draftUrl?: string | null; stages: number; numSlots: (spec: ModelSpec) => number }): Promise<LocalEngine> {
  const model = await loadModel(urlSource(o.modelUrl));
  const draft = o.draftUrl ? await loadModel(urlSource(o.draftUrl), { tokenizer: false }) : null;
  return LocalEngine.create(model, { stages: o.stages, numSlots: o.numSlots(model.spec), draft });
}
