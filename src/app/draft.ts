// The leader's speculative source: the draft model on a whole-model GPU stage of its own, or the
// n-gram source. Shared by the tab engine and the mesh leader.
import { loadModel, type LoadedModel, type ModelSource } from '../model/index.ts';
import type { StageRole } from '../model/types.ts';
import type { GpuContext } from '../gpu/device.ts';
import type { RowBatch, StageOutput } from '../gpu/types.ts';
import { buildStageOn, type ComputeStage } from '../pipeline/gpu-stages.ts';
import type { StageBackend } from '../pipeline/backend.ts';
import { DraftModelSource, type DraftModel } from '../speculative/draft-source.ts';
import { NgramSource } from '../speculative/ngram-source.ts';
import type { SpeculativeSource } from '../speculative/source.ts';
import { BadRequestError, ModelFormatError } from '../common/errors.ts';
import { onEmulatedDevice, type CostModel, type OverrunCount } from '../common/device-emulation.ts';
import type { DraftKind } from './modes.ts';

const GREEDY_ROW = { temperature: 0, topK: 0, topP: 1, uniform: 0 };

/** The draft on an emulated dedicated device: every forward takes at least `cost`; `count` counts forwards and overruns. */
export interface DraftDevice {
  cost: CostModel | null;
  count: OverrunCount;
}

/**
 * What the draft source runs on: a whole-model stage, in this thread (a src/gpu Stage) or in the
 * draft Worker (src/app/draft-remote.ts).
 */
export interface DraftCompute {
  forward(batch: RowBatch): Promise<StageOutput>;
  readonly kv: { commit(slots: number[]): void; release(slots: number[]): void; reset(): void };
}

/** A whole-model stage as the draft source's model (greedy rows: the source only reads logits). */
export function draftModelOf(stage: DraftCompute, vocabSize: number, device: DraftDevice | null = null): DraftModel {
  return {
    vocabSize,
    forward: (rows) => {
      // Candidates come back ranked on the GPU and need no token; K/V-only rows still take the sampling path.
      const work = () => stage.forward(rows.candidates ? rows : { ...rows, sampling: Array.from(rows.positions, () => GREEDY_ROW) });
      return device ? onEmulatedDevice(device.cost, rows.positions.length, device.count, work) : work();
    },
    commitSlots: (s) => stage.kv.commit(s),
    releaseSlots: (s) => stage.kv.release(s),
    resetSlots: () => stage.kv.reset(),
  };
}

/** The source a run asks for (default: the draft model if one is loaded, else none); `device` emulates the draft's. */
export function speculativeSource(kind: DraftKind | undefined, draftStage: DraftCompute | null, vocabSize: number, device: DraftDevice | null = null): SpeculativeSource | null {
  const k = kind ?? (draftStage ? 'model' : 'none');
  if (k === 'ngram') return new NgramSource();
  if (k === 'none') return null;
  if (!draftStage) throw new BadRequestError('no draft model is loaded (give one, or use the n-gram source)');
  return new DraftModelSource(draftModelOf(draftStage, vocabSize, device));
}

/** Loads a draft model's config (no tokenizer: it shares the target's) and checks the vocabulary. */
export async function loadDraft(source: ModelSource, target: LoadedModel, signal?: AbortSignal): Promise<LoadedModel> {
  const draft = await loadModel(source, { tokenizer: false, signal });
  if (draft.spec.vocabSize !== target.spec.vocabSize) {
    throw new ModelFormatError(`draft vocabulary ${draft.spec.vocabSize} differs from the target's ${target.spec.vocabSize}: they must share a tokenizer`);
  }
  return draft;
}

/** The whole draft model as one stage (embed + all layers + head) on `backend` (`ctx` may be null for 'wasm'). */
export function buildDraftStage(backend: StageBackend, ctx: GpuContext | null, draft: LoadedModel, numSlots: number, opts: { onProgress?: (done: number, total: number) => void; signal?: AbortSignal } = {}): Promise<ComputeStage> {
  const role: StageRole = { layers: { start: 0, end: draft.spec.numLayers }, embed: true, head: true };
  return buildStageOn(backend, ctx, draft, role, { numSlots, ...opts });
}
