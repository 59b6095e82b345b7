// Page side of `npm run bench` with local stages: every mode on every prompt, one model load per
// stage count (single: its own one-stage engine). The mesh variant runs over the mesh engine instead.
// Returns the engines' reports; the command line turns them into bench records (src/cli/bench-results.ts).
import { createEngine } from '../app/create-engine.ts';
import type { TabEngine } from '../app/tab-engine.ts';
import type { GenerationReport } from '../app/engine.ts';
import { isSpeculative, variantLabel, type DraftKind, type ModeVariant } from '../app/modes.ts';
import type { Mode } from '../speculative/scheduler.ts';
import type { SamplingSettings } from '../speculative/sampling.ts';
import type { DeviceEmulation } from '../common/device-emulation.ts';
import type { BackendChoice } from '../pipeline/backend.ts';

export interface BenchRequest {
  modelUrl: string;
  draftUrl: string;
  draft: DraftKind;
  /** Target stages in this tab; ignored by `single`, which always runs one stage. */
  stages: number;
  /** What computes the stages (the draft stays on WebGPU). */
  backend: BackendChoice;
  /** specpipe's dynamic tree threshold (GenerationRequest.branchRatio); default the engine's. */
  branchRatio?: number;
  /** Modes with their tree shapes (single: one stage). */
  variants: ModeVariant[];
  prompts: string[];
  tokens: number;
  sampling: SamplingSettings;
  /** Emulated dedicated devices (null: real compute). */
  emulation: DeviceEmulation | null;
}

/** One generation of the bench: which mode, stage count and prompt, and the engine's report. */
export interface BenchPageRun {
  variant: ModeVariant;
  stages: number;
  prompt: number;
  report: Omit<GenerationReport, 'logits'>;
}

export interface BenchPageResult {
  adapter: string;
  stages: string[];
  runs: BenchPageRun[];
}

declare global {
  interface Window {
    __specpipeBenchProgress?: (label: string) => void;
  }
}

async function runAll(engine: TabEngine, req: BenchRequest, variants: ModeVariant[], out: BenchPageRun[]): Promise<void> {
  if (!engine.info?.tokenizer) throw new Error(`${req.modelUrl} has no tokenizer.json`);
  for (const variant of variants) {
    for (const [i, text] of req.prompts.entries()) {
      const report = await engine.generate({
        mode: variant.mode,
        prompt: text,
        maxNewTokens: req.tokens,
        sampling: req.sampling,
        draft: isSpeculative(variant.mode) ? req.draft : 'none',
        width: variant.width ?? undefined,
        depth: variant.depth ?? undefined,
        branchRatio: req.branchRatio,
      }).report;
      out.push({ variant, stages: engine.numStages, prompt: i, report });
      window.__specpipeBenchProgress?.(`${variantLabel(variant)} x${engine.numStages} prompt ${i + 1}`);
    }
  }
}

export async function benchLocal(req: BenchRequest): Promise<BenchPageResult> {
  const runs: BenchPageRun[] = [];
  const groups: [number, ModeVariant[]][] = [
    [1, req.variants.filter((v) => v.mode === 'single')],
    [req.stages, req.variants.filter((v) => v.mode !== 'single')],
  ];
  let stages: string[] = [];
  let adapter = '';
  for (const [count, variants] of groups) {
    if (variants.length === 0) continue;
    const needsDraft = req.draft === 'model' && variants.some((v) => isSpeculative(v.mode));
    const engine = createEngine({ model: req.modelUrl, draft: needsDraft ? req.draftUrl : null, stages: count, emulation: req.emulation, backend: req.backend });
    try {
      const info = await engine.load();
      adapter = info.adapter;
      if (count === req.stages || stages.length === 0) stages = info.stages;
      await runAll(engine, req, variants, runs);
    } finally {
      engine.dispose();
    }
  }
  return { adapter, stages, runs };
}
