// Builds the stages of a loaded model in this tab: fetch a role's tensors (Range reads, cache),
// then upload them to the GPU (src/gpu's Stage) or load them into the CPU backend (src/cpu's
// WasmStage). Both satisfy the stage runner's StageCompute, so a ring may mix them.
import type { LoadedModel, WeightCacheChoice } from '../model/index.ts';
import { loadStageTensors } from '../model/index.ts';
import type { DenseFormat, HostTensor, QuantFormat, StageRole } from '../model/types.ts';
import type { GpuContext } from '../gpu/device.ts';
import { Stage } from '../gpu/stage.ts';
import { WasmStage } from '../cpu/wasm-stage.ts';
import type { StageBackend } from './backend.ts';
import { NoWebGPUError } from '../common/errors.ts';

/** A stage of either backend. */
export type ComputeStage = Stage | WasmStage;

export interface BuildStageOptions {
  numSlots: number;
  format?: DenseFormat | 'auto';
  /** Quantize the projection matrices as they load (see LoadStageOptions.quant). */
  quant?: QuantFormat;
  cache?: WeightCacheChoice;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  /** CPU backend: threads per matmul where the page is cross-origin isolated (default 1). */
  threads?: number;
}

/** A role's tensors, fetched and converted as `opts` say, behind the getter both stage kinds take. */
async function roleTensors(model: LoadedModel, role: StageRole, opts: BuildStageOptions, format: DenseFormat | 'auto'): Promise<(name: string) => HostTensor> {
  const tensors = await loadStageTensors(model.source, model.spec, role, {
    format,
    quant: opts.quant,
    cache: opts.cache,
    onProgress: opts.onProgress,
    signal: opts.signal,
    index: model.tensorIndex,
  });
  return (name) => {
    const t = tensors.get(name);
    if (!t) throw new Error(`stage ${role.layers.start}-${role.layers.end}: tensor ${name} was not loaded`);
    return t;
  };
}

/** A GPU stage of `role`. */
export async function buildStage(ctx: GpuContext, model: LoadedModel, role: StageRole, opts: BuildStageOptions): Promise<Stage> {
  return Stage.create(ctx, model.spec, role, await roleTensors(model, role, opts, opts.format ?? 'auto'), { numSlots: opts.numSlots });
}

/**
 * A stage of `role` on `backend` (`ctx` may be null for 'wasm').
 * @throws NoWebGPUError for 'webgpu' without a GPU context. The CPU backend loads dense weights as f32 unless `opts.format`
 * says otherwise: host memory is plentiful and widening halves in the matvec cost ~2.5x its time
 * (measured on the demo-target); quantized projections stay blocks.
 */
export async function buildStageOn(backend: StageBackend, ctx: GpuContext | null, model: LoadedModel, role: StageRole, opts: BuildStageOptions): Promise<ComputeStage> {
  if (backend === 'webgpu') {
    if (!ctx) throw new NoWebGPUError('this stage was set up for the CPU backend (wasm) and has no GPU device for a WebGPU stage');
    return buildStage(ctx, model, role, opts);
  }
  return WasmStage.create(model.spec, role, await roleTensors(model, role, opts, opts.format ?? 'f32'), { numSlots: opts.numSlots, threads: opts.threads });
}
