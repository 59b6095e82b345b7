// A dedicated Worker that holds the leader's draft model on a GPU device of its own, so that the
// draft's forward passes (and the JavaScript around them) never run on the thread that drives the
// ring. The leader calls it through comlink (src/app/draft-remote.ts); calls are answered in order.
import * as Comlink from 'comlink';
import { createGpuContext, type GpuContext } from '../gpu/device.ts';
import type { ComputeStage } from '../pipeline/gpu-stages.ts';
import type { StageBackend } from '../pipeline/backend.ts';
import type { RowBatch, StageOutput } from '../gpu/types.ts';
import { loadModel, modelSource } from '../model/index.ts';
import { buildDraftStage } from './draft.ts';
import { errorMessage } from '../common/errors.ts';

/** What the worker reports once the draft is on its device. */
export interface DraftWorkerInfo {
  layers: number;
  vocabSize: number;
  adapter: string;
  weightBytes: number;
}

let held: { ctx: GpuContext | null; stage: ComputeStage } | null = null;

function stage(): ComputeStage {
  if (!held) throw new Error('the draft worker has no model loaded');
  return held.stage;
}

const api = {
  /**
   * Loads the draft from `url` onto a new GPU device of this worker (backend 'webgpu') or into this
   * worker's WebAssembly CPU backend ('wasm'); `onLost` hears of a lost device.
   */
  async load(url: string, numSlots: number, backend: StageBackend, onLost: (message: string) => void): Promise<DraftWorkerInfo> {
    if (held) throw new Error('the draft worker already holds a model');
    const model = await loadModel(modelSource(url), { tokenizer: false });
    const ctx = backend === 'webgpu' ? await createGpuContext() : null;
    try {
      held = { ctx, stage: await buildDraftStage(backend, ctx, model, numSlots) };
    } catch (e) {
      ctx?.device.destroy();
      throw e;
    }
    void ctx?.lost.then((e) => onLost(errorMessage(e)));
    return { layers: model.spec.numLayers, vocabSize: model.spec.vocabSize, adapter: ctx?.description ?? 'WebAssembly (CPU, this worker)', weightBytes: held.stage.weightBytes };
  },
  async forward(batch: RowBatch): Promise<StageOutput> {
    const out = await stage().forward(batch);
    const buffers = [out.logits, out.tokens, out.hidden, out.candidates?.ids, out.candidates?.logprobs].flatMap((a) => (a?.buffer instanceof ArrayBuffer ? [a.buffer] : []));
    return Comlink.transfer(out, [...new Set(buffers)]); // views may share a buffer
  },
  commit(slots: number[]): void {
    stage().kv.commit(slots);
  },
  release(slots: number[]): void {
    stage().kv.release(slots);
  },
  reset(): void {
    stage().kv.reset();
  },
  dispose(): void {
    held?.stage.destroy();
    held?.ctx?.device.destroy();
    held = null;
  },
};

/** The worker's interface, as the leader sees it through comlink. */
export type DraftWorkerApi = typeof api;

Comlink.expose(api);
