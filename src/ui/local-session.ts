// The chat page's model in this tab: which files or URLs, loaded once and kept until the model,
// the draft, the stage count or the context changes.
import { loadModel, urlSource, fileSource, type LoadedModel, type ModelSource } from '../model/index.ts';
import { LocalEngine, type LoadProgress } from '../app/local-engine.ts';
import { reservedSlots } from '../speculative/scheduler.ts';
import { chatTemplateOf, type ChatTemplate } from './chat-template.ts';
import { MAX_DEPTH, MAX_WIDTH } from './settings.ts';
import { errorText } from './dom.ts';

export type ModelChoice = { kind: 'url'; url: string } | { kind: 'files'; files: File[] };

export interface SessionRequest {
  target: ModelChoice;
  /** null: no draft model (n-gram or no speculation). */
  draft: ModelChoice | null;
  stages: number;
  context: number;
  onProgress?: LoadProgress;
  signal?: AbortSignal;
}

export interface LoadedSession {
  engine: LocalEngine;
  /** null: plain continuation (the model has no chat template). */
  template: ChatTemplate | null;
}

function keyOf(c: ModelChoice | null): string {
  if (!c) return 'none';
  if (c.kind === 'url') return c.url;
  return c.files.map((f) => `${f.webkitRelativePath || f.name}:${f.size}:${f.lastModified}`).join('|');
}

function sourceOf(c: ModelChoice): ModelSource {
  if (c.kind === 'files') {
    if (c.files.length === 0) throw new Error('no files picked');
    return fileSource(c.files);
  }
  if (c.url.trim() === '') throw new Error('the model URL is empty');
  // Relative URLs (the bundled models) resolve against the page.
  return urlSource(new URL(c.url.trim(), location.href).href);
}

async function open(what: string, c: ModelChoice, tokenizer: boolean, signal?: AbortSignal): Promise<LoadedModel> {
  const where = c.kind === 'url' ? c.url : `${c.files.length} picked files`;
  try {
    return await loadModel(sourceOf(c), { tokenizer, signal });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new Error(`Could not load the ${what} model from ${where}: ${errorText(e)}`);
  }
}

export class LocalSession {
  private current: (LoadedSession & { key: string }) | null = null;

  /** The loaded engine for `req`, reusing the current one when nothing that matters changed. */
  async ensure(req: SessionRequest): Promise<LoadedSession> {
    const key = [keyOf(req.target), keyOf(req.draft), req.stages, req.context].join('\n');
    if (this.current?.key === key) return this.current;
    this.unload();
    const target = await open('target', req.target, true, req.signal);
    if (!target.tokenizer) throw new Error('The target model has no tokenizer.json: the chat page needs one to turn text into tokens.');
    const template = chatTemplateOf(await target.source.readOptionalJson('tokenizer_config.json', req.signal));
    const draft = req.draft ? await open('draft', req.draft, false, req.signal) : null;
    // Room for the largest tree the settings allow, in either speculative mode.
    const reserve = Math.max(
      reservedSlots('specpipe', req.stages, { width: MAX_WIDTH, maxDepth: MAX_DEPTH }),
      reservedSlots('tree', req.stages, { treeWidth: MAX_WIDTH, treeDepth: MAX_DEPTH }),
    );
    const numSlots = Math.min(target.spec.maxPositions, req.context) + reserve;
    const engine = await LocalEngine.create(target, { stages: req.stages, numSlots, draft, onProgress: req.onProgress, signal: req.signal });
    this.current = { key, engine, template };
    return this.current;
  }

  unload(): void {
    this.current?.engine.destroy();
    this.current = null;
  }
}
