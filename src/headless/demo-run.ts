// Page side of `npm run demo`: one generation in this tab, streaming every token and stage packet
// to the command line (which prints the text and live stats).
import { createEngine } from '../app/create-engine.ts';
import { isSpeculative, type DraftKind } from '../app/modes.ts';
import type { LiveEvent } from '../app/live-stats.ts';
import type { GenerateMetrics, Mode, StopReason } from '../speculative/scheduler.ts';
import type { SamplingSettings } from '../speculative/sampling.ts';
import type { DeviceEmulation } from '../common/device-emulation.ts';
import type { EmulationReport, RunBound } from '../app/engine.ts';

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
  /** Emulated dedicated devices (null: real compute). */
  emulation: DeviceEmulation | null;
}

export interface DemoReport {
  adapter: string;
  stages: string[];
  loadMs: number;
  stopReason: StopReason;
  metrics: GenerateMetrics;
  stageBusyMs: number[];
  bound: RunBound | null;
  emulation: EmulationReport | null;
}

declare global {
  interface Window {
    __specpipeLive?: (e: LiveEvent) => void;
  }
}

export async function demoLocal(req: DemoRequest): Promise<DemoReport> {
  const engine = createEngine({
    model: req.modelUrl,
    draft: req.draft === 'model' && isSpeculative(req.mode) ? req.draftUrl : null,
    stages: req.mode === 'single' ? 1 : req.stages,
    emulation: req.emulation,
  });
  try {
    const info = await engine.load();
    const live = (e: LiveEvent): void => window.__specpipeLive?.(e);
    const { mode, prompt, maxNewTokens, sampling, draft, width, depth } = req;
    const result = await engine.generate(
      { mode, prompt, maxNewTokens, sampling, draft, width, depth },
      {
        onToken: (t) => live({ kind: 'token', t: performance.now(), hit: t.hit, text: t.text }),
        onPacket: (stage, packet) => live({ kind: 'packet', stage, packet }),
      },
    ).report;
    return {
      adapter: info.adapter,
      stages: info.stages,
      loadMs: info.loadMs,
      stopReason: result.stopReason,
      metrics: result.metrics,
      stageBusyMs: result.stageBusyMs,
      bound: result.bound,
      emulation: result.emulation,
    };
  } finally {
    engine.dispose();
  }
}
