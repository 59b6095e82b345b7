// Page side of `npm run generate` with every stage in this tab (and the runtime e2e tests): one
// generation through the Engine, streamed to the command line as it commits.
import { createEngine } from '../app/create-engine.ts';
import type { GenerationReport, GenerationRequest } from '../app/engine.ts';
import type { DeviceEmulation } from '../common/device-emulation.ts';
import type { QuantFormat } from '../model/types.ts';
import type { BackendSetting } from '../pipeline/backend.ts';

/** What the command line sends: the model's location and stage count, plus the request. */
export interface LocalRunRequest extends GenerationRequest {
  modelUrl: string;
  /** Draft model URL (specpipe / tree with draft 'model'). */
  draftUrl?: string;
  /** Stages in this tab (default 1; single always runs one). */
  stages?: number;
  /** Full logits of the first K generated tokens (single / pp only). */
  dumpLogits?: number;
  /** Stream text to the host as it is generated (Playwright exposes the function). */
  stream?: boolean;
  /** Emulated dedicated devices (null: real compute). */
  emulation?: DeviceEmulation | null;
  /** Quantize the target's projection matrices on load (`--quant`). */
  quant?: QuantFormat;
  /** What computes the stages (`--backend`; default webgpu). */
  backend?: BackendSetting;
  /** CPU backend threads (`--threads`; default 1). */
  wasmThreads?: number;
}

declare global {
  interface Window {
    __specpipeStream?: (text: string) => void;
  }
}

export async function runLocal(req: LocalRunRequest): Promise<GenerationReport> {
  const { modelUrl, draftUrl, stages, dumpLogits, stream, emulation, quant, backend, wasmThreads, ...request } = req;
  const engine = createEngine({
    model: modelUrl,
    draft: draftUrl,
    emulation,
    quant,
    backend,
    wasmThreads,
    stages: req.mode === 'single' ? 1 : (stages ?? 1),
    // Byte-level tokenizers give at most one token per byte.
    maxContext: (req.promptIds?.length ?? 0) + new TextEncoder().encode(req.prompt ?? '').length + req.maxNewTokens + 1,
  });
  try {
    await engine.load();
    return await engine.generate(request, {
      dumpLogits,
      onToken: (t) => {
        if (stream && t.text) window.__specpipeStream?.(t.text);
      },
    }).report;
  } finally {
    engine.dispose();
  }
}
