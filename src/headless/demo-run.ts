// Page side of `npm run demo`: one generation in this tab, streaming every token and stage packet
// to the command line (which prints the text and live stats).
import { openEngine } from '../app/local-engine.ts';
import { isSpeculative, treeShape, type DraftKind } from '../app/modes.ts';
import type { LiveEvent } from '../app/live-stats.ts';
import { reservedSlots, type GenerateMetrics, type Mode, type StopReason } from '../speculative/scheduler.ts';
import type { SamplingSettings } from '../speculative/sampling.ts';

export interface DemoRequest {
  modelUrl: string;
  draftUrl: string | null;
  draft: DraftKind;
  stages: number;
  mode: Mode;
  prompt: string;
  maxNewTokens: number;
  width: number;
  depth: number;
  sampling: SamplingSettings;
}

export interface DemoReport {
  adapter: string;
  stages: string[];
  loadMs: number;
  stopReason: StopReason;
  metrics: GenerateMetrics;
  stageBusyMs: number[];
}

declare global {
  interface Window {
    __specpipeLive?: (e: LiveEvent) => void;
  }
}

export async function demoLocal(req: DemoRequest): Promise<DemoReport> {
  const t0 = performance.now();
  const stages = req.mode === 'single' ? 1 : req.stages;
  const reserve = reservedSlots(req.mode, stages, treeShape(req.width, req.depth));
  const engine = await openEngine({
    modelUrl: req.modelUrl,
    draftUrl: req.draft === 'model' && isSpeculative(req.mode) ? req.draftUrl : null,
    stages,
    numSlots: (spec) => spec.maxPositions + reserve,
  });
  try {
    const tokenizer = engine.model.tokenizer;
    if (!tokenizer) throw new Error(`${req.modelUrl} has no tokenizer.json`);
    const streamer = tokenizer.stream();
    const loadMs = performance.now() - t0;
    const live = (e: LiveEvent): void => window.__specpipeLive?.(e);
    const result = await engine.run({
      mode: req.mode,
      prompt: tokenizer.encode(req.prompt),
      maxNewTokens: req.maxNewTokens,
      eosTokens: engine.model.spec.eosTokenIds,
      sampling: req.sampling,
      draft: req.draft,
      ...treeShape(req.width, req.depth),
      onToken: (tok, _i, hit) => live({ kind: 'token', t: performance.now(), hit, text: streamer.push(tok) }),
      onPacket: (stage, packet) => live({ kind: 'packet', stage, packet }),
    });
    return {
      adapter: engine.adapter,
      stages: engine.stageDescriptions,
      loadMs,
      stopReason: result.stopReason,
      metrics: result.metrics,
      stageBusyMs: result.stageBusyMs,
    };
  } finally {
    engine.destroy();
  }
}
