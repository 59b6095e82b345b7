// The leader's side of the draft Worker (src/app/draft-worker.ts): the draft model's compute as a
// DraftCompute whose forward passes run on the worker's own GPU device, off the thread that drives
// the ring. Slot commits and releases are posted without waiting; the worker applies every call in
// the order it was made, so they always precede the next forward.
import * as Comlink from 'comlink';
import type { RowBatch, StageOutput } from '../gpu/types.ts';
import type { GpuContext } from '../gpu/device.ts';
import { modelSource, type LoadedModel, type ModelSource } from '../model/index.ts';
import { DeviceLostError, ModelFormatError, errorMessage } from '../common/errors.ts';
import type { DraftWorkerApi, DraftWorkerInfo } from './draft-worker.ts';
import type { StageBackend } from '../pipeline/backend.ts';
import { buildDraftStage, loadDraft, type DraftCompute } from './draft.ts';

/** The draft model in its Worker: compute, what the worker loaded, and how it can fail. */
export interface RemoteDraft extends DraftCompute {
  readonly info: DraftWorkerInfo;
  /** Resolves with the first failure: the worker crashed, its device was lost, or a posted call failed. */
  readonly failed: Promise<Error>;
  /** Frees the worker's device and ends the worker. */
  destroy(): void;
}

/** Whether this context can start the draft worker (module workers with WebGPU: a browser page). */
export function canRunDraftWorker(): boolean {
  return typeof Worker !== 'undefined' && typeof window !== 'undefined';
}

/** Starts a worker that loads the draft model from `url` onto a GPU device of its own. */
export async function startDraftWorker(url: string, numSlots: number, backend: StageBackend = 'webgpu'): Promise<RemoteDraft> {
  const worker = new Worker(new URL('./draft-worker.ts', import.meta.url), { type: 'module', name: 'specpipe draft model' });
  const api = Comlink.wrap<DraftWorkerApi>(worker);
  let fail: (e: Error) => void = () => undefined;
  const failed = new Promise<Error>((resolve) => (fail = resolve));
  worker.addEventListener('error', (e) => fail(new Error(`the draft worker failed: ${e.message || 'it could not start'}`)));
  const posted = (p: Promise<void>): void => void p.catch((e: unknown) => fail(e instanceof Error ? e : new Error(errorMessage(e))));
  let info: DraftWorkerInfo;
  try {
    info = await Promise.race([
      api.load(url, numSlots, backend, Comlink.proxy((message: string) => fail(new DeviceLostError('unknown', `the draft model's GPU device was lost: ${message}`)))),
      failed.then((e) => Promise.reject(e)),
    ]);
  } catch (e) {
    worker.terminate();
    throw e;
  }
  return {
    info,
    failed,
    forward: (batch: RowBatch): Promise<StageOutput> => api.forward(batch),
    kv: {
      commit: (slots) => posted(api.commit([...slots])),
      release: (slots) => posted(api.release([...slots])),
      reset: () => posted(api.reset()),
    },
    destroy: () => {
      void api
        .dispose()
        .catch(() => undefined)
        .finally(() => {
          api[Comlink.releaseProxy]();
          worker.terminate();
        });
    },
  };
}

/** A loaded draft model, wherever it runs. */
export interface HeldDraft {
  compute: DraftCompute;
  /** 'its own worker (...)' or 'this tab': for logs and reports. */
  where: string;
  /** Resolves with a failure that ends the draft (worker crash, lost device). */
  failed: Promise<Error>;
  destroy(): void;
}

/**
 * Loads the draft model where it runs best: at a URL in a page, in a Worker with a GPU device of its
 * own; otherwise (a model from local files, or no Worker) on `device()`'s context in this thread.
 * @throws ModelFormatError when the draft's vocabulary differs from the target's.
 */
export async function loadDraftModel(
  at: string | ModelSource,
  target: LoadedModel,
  numSlots: number,
  opts: { device: () => Promise<{ ctx: GpuContext; owned: boolean }>; backend?: StageBackend; signal?: AbortSignal; onProgress?: (done: number, total: number) => void },
): Promise<HeldDraft> {
  const backend = opts.backend ?? 'webgpu';
  if (typeof at === 'string' && canRunDraftWorker()) {
    const remote = await startDraftWorker(at, numSlots, backend);
    if (remote.info.vocabSize !== target.spec.vocabSize) {
      remote.destroy();
      throw new ModelFormatError(`draft vocabulary ${remote.info.vocabSize} differs from the target's ${target.spec.vocabSize}: they must share a tokenizer`);
    }
    return { compute: remote, where: `its own worker (${remote.info.layers} layers, ${remote.info.adapter})`, failed: remote.failed, destroy: () => remote.destroy() };
  }
  const draft = await loadDraft(typeof at === 'string' ? modelSource(at) : at, target, opts.signal);
  const { ctx, owned } = backend === 'webgpu' ? await opts.device() : { ctx: null, owned: false };
  try {
    const stage = await buildDraftStage(backend, ctx, draft, numSlots, { signal: opts.signal, onProgress: opts.onProgress });
    return {
      compute: stage,
      where: `this tab (${draft.spec.numLayers} layers, ${backend})`,
      failed: ctx?.lost ?? new Promise<Error>(() => undefined),
      destroy: () => {
        stage.destroy();
        if (owned) ctx?.device.destroy();
      },
    };
  } catch (e) {
    if (owned) ctx?.device.destroy();
    throw e;
  }
}
