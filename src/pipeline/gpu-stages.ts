// Builds GPU stages of a loaded model in this tab: fetch a role's tensors (Range reads, cache),
// upload them.
import type { LoadedModel, WeightCacheChoice } from '../model/index.ts';
import { loadStageTensors } from '../model/index.ts';
import type { DenseFormat, QuantFormat, StageRole } from '../model/types.ts';
import type { GpuContext } from '../gpu/device.ts';
import { Stage } from '../gpu/stage.ts';

export interface BuildStageOptions {
  numSlots: number;
  format?: DenseFormat | 'auto';
  /** Quantize the projection matrices as they load (see LoadStageOptions.quant). */
  quant?: QuantFormat;
  cache?: WeightCacheChoice;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export async function buildStage(ctx: GpuContext, model: LoadedModel, role: StageRole, opts: BuildStageOptions): Promise<Stage> {
  const tensors = await loadStageTensors(model.source, model.spec, role, {
    format: opts.format ?? 'auto',
    quant: opts.quant,
    cache: opts.cache,
    onProgress: opts.onProgress,
    signal: opts.signal,
    index: model.tensorIndex,
  });
  return Stage.create(
    ctx,
    model.spec,
    role,
    (name) => {
      const t = tensors.get(name);
      if (!t) throw new Error(`stage ${role.layers.start}-${role.layers.end}: tensor ${name} was not loaded`);
      return t;
    },
    { numSlots: opts.numSlots },
  );
}
