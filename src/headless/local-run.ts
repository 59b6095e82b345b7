// One generation in this tab, every stage local: the engine behind `npm run generate --mode single`
// (and local pp/specpipe/tree runs), called by the command line through Playwright.
import { isSpeculative, treeShape } from '../app/modes.ts';
import { loadModel, urlSource, type LoadedModel } from '../model/index.ts';
import type { LevelPacket, Pipeline, ResultPacket } from '../pipeline/contract.ts';
import { reservedSlots, type GenerateMetrics, type Mode, type StopReason } from '../speculative/scheduler.ts';
import type { SamplingSettings } from '../speculative/sampling.ts';
import { LocalEngine } from '../app/local-engine.ts';
import { promptIdsOf, tokensPerSecond, type LocalRunReport } from '../app/generation.ts';

export type { LocalRunReport } from '../app/generation.ts';

export interface LocalRunRequest {
  modelUrl: string;
  /** Draft model URL (specpipe / tree with draft 'model'). */
  draftUrl?: string;
  draft?: 'model' | 'ngram' | 'none';
  prompt?: string;
  promptIds?: number[];
  maxNewTokens: number;
  sampling: SamplingSettings;
  mode: Mode;
  /** Stages in this tab (default 1). */
  stages?: number;
  width?: number;
  depth?: number;
  /** Full logits of the first K generated tokens (single / pp only). */
  dumpLogits?: number;
  /** Stream text to the host as it is generated (Playwright exposes the function). */
  stream?: boolean;
}

declare global {
  interface Window {
    __specpipeStream?: (text: string) => void;
  }
}

/** Wraps a pipeline to ask the last stage for every row's logits and keep them by position. */
function tapLogits(inner: Pipeline, byPosition: Map<number, Float32Array>): Pipeline {
  const positionOf = new Map<number, number>();
  return {
    get numStages() {
      return inner.numStages;
    },
    get numSlots() {
      return inner.numSlots;
    },
    begin: (c) => inner.begin(c),
    credit: () => inner.credit(),
    send(level: LevelPacket) {
      for (const r of level.rows) positionOf.set(r.node, r.position);
      inner.send({ ...level, logitsRows: level.rows.map((_, i) => i) });
    },
    onResult(handler: (r: ResultPacket) => void) {
      return inner.onResult((r) => {
        if (r.logits) {
          const V = r.logits.length / Math.max(1, r.logitsRows.length);
          r.logitsRows.forEach((node, i) => byPosition.set(positionOf.get(node)!, r.logits!.slice(i * V, (i + 1) * V)));
        }
        handler(r);
      });
    },
    waitForProgress: (s) => inner.waitForProgress(s),
    stepCount: () => inner.stepCount(),
  };
}

export async function runLocal(req: LocalRunRequest): Promise<LocalRunReport> {
  const t0 = performance.now();
  const model: LoadedModel = await loadModel(urlSource(req.modelUrl));
  const spec = model.spec;
  const promptIds = promptIdsOf(model, req.modelUrl, req);
  if (req.dumpLogits && isSpeculative(req.mode)) throw new Error('--dump-logits works with --mode single or pp');

  const numStages = req.mode === 'single' ? 1 : (req.stages ?? 1);
  const maxLen = Math.min(spec.maxPositions, promptIds.length + req.maxNewTokens + 1);
  const numSlots = maxLen + reservedSlots(req.mode, numStages, treeShape(req.width, req.depth));
  const draftKind = req.draft ?? (req.draftUrl ? 'model' : 'none');
  const speculative = isSpeculative(req.mode);
  let draft: LoadedModel | null = null;
  if (speculative && draftKind === 'model') {
    if (!req.draftUrl) throw new Error('a draft model URL is needed for --draft model');
    draft = await loadModel(urlSource(req.draftUrl), { tokenizer: false });
  }
  const engine = await LocalEngine.create(model, { stages: numStages, numSlots, draft });
  try {
    const loadMs = performance.now() - t0;
    const logitsByPos = new Map<number, Float32Array>();
    const streamer = req.stream && model.tokenizer ? model.tokenizer.stream() : null;
    const t1 = performance.now();
    const result = await engine.run({
      mode: req.mode,
      prompt: promptIds,
      maxNewTokens: req.maxNewTokens,
      eosTokens: spec.eosTokenIds,
      sampling: req.sampling,
      draft: speculative ? draftKind : 'none',
      ...treeShape(req.width, req.depth),
      wrap: req.dumpLogits ? (p) => tapLogits(p, logitsByPos) : undefined,
      onToken: (tok) => {
        if (streamer && window.__specpipeStream) window.__specpipeStream(streamer.push(tok));
      },
    });
    const generateMs = performance.now() - t1;
    const m = result.metrics;
    const report: LocalRunReport = {
      tokens: result.tokens,
      text: model.tokenizer ? model.tokenizer.decode(result.tokens) : null,
      promptIds,
      stopReason: result.stopReason,
      stages: engine.stageDescriptions,
      adapter: engine.adapter,
      weightBytes: engine.weightBytes,
      timings: {
        loadMs,
        generateMs,
        ttftMs: m.ttftMs,
        tbtP50Ms: m.tbtP50Ms,
        tbtP95Ms: m.tbtP95Ms,
        tokensPerSecond: tokensPerSecond(result.tokens.length, m),
      },
      metrics: m,
      warnings: model.warnings,
    };
    if (req.dumpLogits) {
      report.logits = [];
      for (let i = 0; i < Math.min(req.dumpLogits, result.tokens.length); i++) {
        const l = logitsByPos.get(promptIds.length - 1 + i);
        if (!l) throw new Error(`no logits recorded for generated token ${i}`);
        report.logits.push(Array.from(l));
      }
    }
    return report;
  } finally {
    engine.destroy();
  }
}

