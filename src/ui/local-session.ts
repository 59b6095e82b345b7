// The chat page's model in this tab: which files or URLs, loaded once into a tab engine and kept
// until the model, the draft, the stage count, the context or the quantization changes (or the engine fails).
import { fileSource, ggufSource, isGgufLocation } from '../model/index.ts';
import { createEngine } from '../app/create-engine.ts';
import type { ModelLocation, TabEngine } from '../app/tab-engine.ts';
import { loadOrDispose, type EnginePhase, type LoadProgress } from '../app/engine.ts';
import { BadRequestError } from '../common/errors.ts';
import { costText, type DeviceEmulation } from '../common/device-emulation.ts';
import type { QuantFormat } from '../model/types.ts';
import { chatTemplateOf, type ChatTemplate } from '../model/chat-template.ts';

export type ModelChoice = { kind: 'url'; url: string } | { kind: 'files'; files: File[] };

export interface SessionRequest {
  target: ModelChoice;
  /** null: no draft model (n-gram or no speculation). */
  draft: ModelChoice | null;
  stages: number;
  context: number;
  /** Emulated dedicated devices (null: real compute). */
  emulation: DeviceEmulation | null;
  /** Quantize the target's projection matrices on load (null: as stored). */
  quant?: QuantFormat | null;
  onProgress?: (p: LoadProgress) => void;
  /** The engine's phase changes (a lost GPU device turns it 'failed'). */
  onPhase?: (phase: EnginePhase, error: Error | null) => void;
  signal?: AbortSignal;
}

export interface LoadedSession {
  engine: TabEngine;
  /** null: plain continuation (the model has no chat template). */
  template: ChatTemplate | null;
}

function keyOf(c: ModelChoice | null): string {
  if (!c) return 'none';
  if (c.kind === 'url') return c.url;
  return c.files.map((f) => `${f.webkitRelativePath || f.name}:${f.size}:${f.lastModified}`).join('|');
}

/** A URL as typed (the engine resolves it against the page, and errors quote it), or the picked files. */
function locationOf(c: ModelChoice): ModelLocation {
  if (c.kind === 'url') return c.url;
  if (c.files.length === 0) throw new BadRequestError('no files picked');
  // One picked .gguf file is the whole model.
  const gguf = c.files.filter((f) => isGgufLocation(f.name));
  return gguf.length === 1 ? ggufSource(fileSource(c.files), gguf[0].name) : fileSource(c.files);
}

export class LocalSession {
  private current: (LoadedSession & { key: string }) | null = null;

  /** The loaded engine for `req`, reusing the current one when nothing that matters changed. */
  async ensure(req: SessionRequest): Promise<LoadedSession> {
    const key = [keyOf(req.target), keyOf(req.draft), req.stages, req.context, costText(req.emulation?.stageMs ?? null), costText(req.emulation?.draftMs ?? null), req.quant ?? ''].join('\n');
    if (this.current?.key === key && this.current.engine.phase !== 'failed') return this.current;
    this.unload();
    const engine = createEngine({ model: locationOf(req.target), draft: req.draft ? locationOf(req.draft) : null, stages: req.stages, maxContext: req.context, emulation: req.emulation, quant: req.quant ?? undefined, onPhase: req.onPhase });
    const info = await loadOrDispose(engine, { onProgress: req.onProgress, signal: req.signal });
    this.current = { key, engine, template: null };
    if (!info.tokenizer) throw new BadRequestError('The target model has no tokenizer.json: the chat page needs one to turn text into tokens.');
    this.current.template = chatTemplateOf(await engine.model!.source.readOptionalJson('tokenizer_config.json', req.signal));
    return this.current;
  }

  unload(): void {
    this.current?.engine.dispose();
    this.current = null;
  }
}
