// The chat page's controller: settings -> load (progress) -> generate (streaming, stop) -> stats,
// with the target's stages in this tab (LocalSession) or in the room's stage tabs (MeshBackend).
import { modelSource } from '../model/index.ts';
import { LiveStats, statsLaw } from '../app/live-stats.ts';
import { boundLine, emulationLine } from '../app/report-text.ts';
import { emulationText } from '../common/device-emulation.ts';
import { isSpeculative } from '../app/modes.ts';
import type { EnginePhase, GenerationReport, TokenEvent } from '../app/engine.ts';
import type { MeshEngine } from '../app/mesh-engine.ts';
import { byId, el } from './dom.ts';
import { errorMessage } from '../common/errors.ts';
import { parseSettings, type ChatSettings } from './settings.ts';
import { LocalSession, type LoadedSession, type ModelChoice } from './local-session.ts';
import { MeshBackend } from './mesh-backend.ts';
import { renderMeshView } from './mesh-view.ts';
import { ProgressBars } from './progress.ts';
import { renderStats } from './stats-panel.ts';
import { pipelineSvg, type PipelineTrace } from './pipeline-view.ts';
import { chatTemplateOf, type ChatMessage, type ChatTemplate } from '../model/chat-template.ts';
import type { RoomParams } from './room.ts';
import { idbStore, memoryStore, SessionStore, type SavedGeneration, type SavedSession } from '../app/session-store.ts';
import type { MeshOpenOptions } from '../app/mesh-types.ts';

interface Ui {
  modelForm: HTMLFormElement;
  settings: HTMLFormElement;
  targetFiles: HTMLInputElement;
  draftFiles: HTMLInputElement;
  prompt: HTMLTextAreaElement;
  send: HTMLButtonElement;
  stop: HTMLButtonElement;
  transcript: HTMLElement;
  error: HTMLElement;
  status: HTMLElement;
  stats: HTMLElement;
  pipeline: HTMLElement;
  meshView: HTMLElement;
  progress: ProgressBars;
  modelInfo: HTMLElement;
}

function findUi(): Ui {
  return {
    modelForm: byId('model-form', HTMLFormElement),
    settings: byId('settings', HTMLFormElement),
    targetFiles: byId('target-files', HTMLInputElement),
    draftFiles: byId('draft-files', HTMLInputElement),
    prompt: byId('prompt', HTMLTextAreaElement),
    send: byId('send', HTMLButtonElement),
    stop: byId('stop', HTMLButtonElement),
    transcript: byId('transcript', HTMLElement),
    error: byId('error', HTMLElement),
    status: byId('status', HTMLElement),
    stats: byId('stats', HTMLElement),
    pipeline: byId('pipeline', HTMLElement),
    meshView: byId('mesh-view', HTMLElement),
    progress: new ProgressBars(byId('progress', HTMLElement)),
    modelInfo: byId('model-info', HTMLElement),
  };
}

/** A rows-of-stats painter, throttled to one repaint per frame; `final` rows survive late repaints. */
class StatsPainter {
  private frame = 0;
  private extra: [string, string][];

  constructor(
    private readonly ui: Ui,
    private readonly live: LiveStats,
    private readonly trace: PipelineTrace | null,
    header: [string, string],
  ) {
    this.extra = [header];
    ui.pipeline.replaceChildren(trace ? '' : el('p', { class: 'hint' }, 'The pipeline picture shows stages in this tab (stage tabs do not report per-level traces yet).'));
  }

  schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.paint());
  }

  finish(rows: [string, string][]): void {
    this.extra = [...this.extra, ...rows];
    cancelAnimationFrame(this.frame);
    this.paint();
  }

  private paint(): void {
    this.frame = 0;
    renderStats(this.ui.stats, this.live.snapshot(), this.extra);
    if (this.trace) this.ui.pipeline.innerHTML = pipelineSvg(this.trace);
  }
}

/** The report's own figures, next to its conditions (the same definitions as the command line's). */
function finalRows(r: Pick<GenerationReport, 'metrics' | 'timings' | 'bound' | 'emulation' | 'stopReason'>): [string, string][] {
  const m = r.metrics;
  const specBound = m.boundTokensPerStep === null ? '' : `, bound ${m.boundTokensPerStep.toFixed(2)} tokens/step, ${m.boundSpeedupOverPp?.toFixed(2)}x over pp`;
  return [
    ['first token', m.ttftMs === null ? '–' : `${m.ttftMs.toFixed(0)} ms`],
    ['decode tokens/s (final)', r.timings.tokensPerSecond?.toFixed(1) ?? '–'],
    ['hit rate (final)', m.hitRate === null ? '–' : `${(m.hitRate * 100).toFixed(0)}%${specBound}`],
    ['bound (final)', boundLine(r.bound, r.timings.tbtMeanMs)],
    ['devices', emulationLine(r.emulation)],
    ['stop', r.stopReason],
  ];
}

function choice(form: HTMLFormElement, urlField: string, files: HTMLInputElement): ModelChoice {
  if (files.files && files.files.length > 0) return { kind: 'files', files: Array.from(files.files) };
  return { kind: 'url', url: String(new FormData(form).get(urlField) ?? '') };
}

export class ChatApp {
  private readonly ui = findUi();
  private readonly session = new LocalSession();
  private readonly mesh: MeshBackend;
  private readonly history: ChatMessage[] = [];
  private running: AbortController | null = null;
  /** This room's saved session (settings, conversation, ring, a running generation): a reload resumes it. */
  private readonly store: Promise<SessionStore>;
  /** The page is going away: a generation cut now stays 'running' in the store, to be resumed. */
  private unloading = false;

  constructor(room: RoomParams) {
    this.mesh = new MeshBackend(room);
    this.store = SessionStore.open(typeof indexedDB === 'undefined' ? memoryStore() : idbStore(), room.room);
    // A reload must come back to this room (a page opened without ?room= got a fresh one).
    const url = new URL(location.href);
    if (url.searchParams.get('room') !== room.room) {
      url.searchParams.set('room', room.room);
      history.replaceState(history.state, '', url);
    }
  }

  start(): void {
    this.ui.send.addEventListener('click', () => void this.submit());
    this.ui.prompt.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) void this.submit();
    });
    this.ui.stop.addEventListener('click', () => this.running?.abort());
    this.ui.modelForm.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.guard(async (signal) => {
        const s = this.settings();
        await (s.placement === 'mesh' ? this.openMesh(s, signal) : this.load(s, signal));
      });
    });
    addEventListener('pagehide', () => {
      this.unloading = true;
      this.mesh.close();
    });
    this.setRunning(false);
    void this.restore().catch((e: unknown) => console.warn(`could not restore the saved session: ${errorMessage(e)}`));
  }

  /** The settings and model fields by name (picked files are not kept). */
  private fields(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const form of [this.ui.modelForm, this.ui.settings]) for (const [k, v] of new FormData(form)) if (typeof v === 'string') out[k] = v;
    return out;
  }

  /**
   * A reload (or a new tab of this room): the saved settings and conversation come back, and a mesh
   * generation the reload cut is finished on the same stage tabs from its last committed token.
   */
  private async restore(): Promise<void> {
    const saved = (await this.store).restored;
    if (!saved) return;
    for (const form of [this.ui.modelForm, this.ui.settings]) {
      for (const [name, value] of Object.entries(saved.settings)) {
        const field = form.elements.namedItem(name);
        if (field instanceof HTMLInputElement || field instanceof HTMLSelectElement) field.value = value;
      }
    }
    let out: HTMLElement | null = null;
    for (const t of saved.turns) {
      out = el('span', { class: 'assistant' }, t.output);
      this.ui.transcript.append(el('div', { class: 'turn' }, t.chat ? el('div', { class: 'user' }, t.prompt) : el('span', { class: 'prompt' }, t.prompt), out));
    }
    this.history.push(...saved.history);
    if (saved.running && out) await this.guard((signal) => this.resume(saved, saved.running!, out!, signal));
  }

  /**
   * Finishes the generation a reload cut, from its last saved token: in a mesh on the same stage tabs
   * (their layers and KV kept), else in this tab. The tokens are an uninterrupted run's.
   */
  private async resume(saved: SavedSession, run: NonNullable<SavedSession['running']>, out: HTMLElement, signal: AbortSignal): Promise<void> {
    const turn = saved.turns[saved.turns.length - 1];
    const s = this.settings();
    const engine = s.placement === 'mesh'
      ? (await this.openMesh(s, signal, { ring: saved.ring, keep: run.request.promptIds.length + run.committed.length - 1 })).engine
      : (await this.load(s, signal)).engine;
    this.ui.status.textContent = `resuming the generation the reload cut, ${run.committed.length} token(s) in…`;
    const tokens = [...run.committed];
    const left = run.request.maxNewTokens - run.committed.length;
    const request = { ...run.request, promptIds: [...run.request.promptIds, ...run.committed], maxNewTokens: left };
    await this.tracked(turn, null, out, async (onToken) => {
      if (left > 0) await engine.generate(request, { signal, onToken: (t) => (tokens.push(t.token), onToken(t)) }).report;
      // The whole answer decoded at once (the text streamed before and after the reload joins exactly).
      out.textContent = engine.info?.tokenizer?.decode(tokens) ?? out.textContent;
    });
    this.ui.status.textContent = `done: resumed after the reload, ${tokens.length} tokens`;
  }

  /**
   * Runs a turn's generation with the saved session following it: begun (`request`; null: it goes on
   * from a restored one), every token shown and saved, ended with the turn in the conversation when it
   * finished. A reload that cuts it leaves it running in the store, for restore() to finish.
   */
  private async tracked<R>(turn: { prompt: string; chat: boolean }, request: SavedGeneration['request'] | null, out: HTMLElement, gen: (onToken: (t: TokenEvent) => void) => Promise<R>): Promise<R> {
    const store = await this.store;
    if (request) store.beginTurn(turn.prompt, turn.chat, request);
    let finished = false;
    try {
      const r = await gen((t) => {
        out.textContent += t.text;
        store.token(t.token, t.text);
      });
      finished = true;
      return r;
    } finally {
      const messages: ChatMessage[] = finished && turn.chat ? [{ role: 'user', content: turn.prompt }, { role: 'assistant', content: out.textContent ?? '' }] : [];
      if (!this.unloading) store.endTurn(messages);
      if (request === null) this.history.push(...messages);
    }
  }

  private settings(): ChatSettings {
    const data = new FormData(this.ui.settings);
    return parseSettings((name) => String(data.get(name) ?? ''));
  }

  private setRunning(on: boolean): void {
    this.ui.send.disabled = on;
    this.ui.stop.disabled = !on;
    document.body.dataset.state = on ? 'running' : 'idle';
  }

  /** Runs `work` with the stop button live; errors land in the error box. */
  private async guard(work: (signal: AbortSignal) => Promise<void>): Promise<void> {
    if (this.running) return;
    const ac = new AbortController();
    this.running = ac;
    this.setRunning(true);
    this.ui.error.hidden = true;
    try {
      await work(ac.signal);
    } catch (e) {
      this.ui.status.textContent = ac.signal.aborted ? 'stopped' : 'error';
      if (!ac.signal.aborted) {
        this.ui.error.textContent = errorMessage(e);
        this.ui.error.hidden = false;
      }
    } finally {
      this.running = null;
      this.setRunning(false);
    }
  }

  /** Loads the model into this tab (stages here), reusing what is loaded. */
  private async load(s: ChatSettings, signal: AbortSignal): Promise<LoadedSession> {
    const wantsDraft = isSpeculative(s.mode) && s.draft === 'model';
    this.ui.status.textContent = 'loading the model…';
    const t0 = performance.now();
    let fresh = false;
    const loaded = await this.session.ensure({
      target: choice(this.ui.modelForm, 'target-url', this.ui.targetFiles),
      draft: wantsDraft ? choice(this.ui.modelForm, 'draft-url', this.ui.draftFiles) : null,
      stages: s.placement === 'tab' ? s.stages : 1,
      context: s.context,
      emulation: s.emulation,
      quant: s.quant,
      onProgress: ({ part, done, total }) => {
        if (!fresh) this.ui.progress.clear();
        fresh = true;
        this.ui.progress.update(part, done, total);
      },
      onPhase: (phase, error) => this.onEnginePhase(phase, error),
      signal,
    });
    const info = loaded.engine.info!;
    this.ui.modelInfo.textContent =
      `${info.spec.numLayers} layers, vocabulary ${info.spec.vocabSize}, ${(info.weightBytes / 2 ** 20).toFixed(1)} MiB of target weights on ${info.adapter}; ` +
      `stages in this tab: ${info.stages.join(' | ')}; ${wantsDraft ? 'draft model loaded' : 'no draft model'}; ` +
      (loaded.template ? 'chat template: yes' : 'plain continuation (no chat template)');
    if (fresh) this.ui.status.textContent = `model ready (loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s)`;
    return loaded;
  }

  /** A lost GPU device fails the engine: say so (the next load makes a new one). */
  private onEnginePhase(phase: EnginePhase, error: Error | null): void {
    if (phase !== 'failed' || !error) return;
    this.ui.status.textContent = 'error';
    this.ui.error.textContent = `${error.message} Load the model again (or reload the page) to go on.`;
    this.ui.error.hidden = false;
  }

  private async submit(): Promise<void> {
    const text = this.ui.prompt.value;
    if (text.trim() === '') return;
    await this.guard(async (signal) => {
      const s = this.settings();
      const out = el('span', { class: 'assistant' });
      const turn = el('div', { class: 'turn' });
      const show = (template: ChatTemplate | null): string => {
        turn.append(template ? el('div', { class: 'user' }, text) : el('span', { class: 'prompt' }, text), out);
        this.ui.transcript.append(turn);
        return template ? template.render([...this.history, { role: 'user', content: text }]) : text;
      };
      const template = s.placement === 'mesh' ? await this.runMesh(s, text, show, out, signal) : await this.runHere(s, text, show, out, signal);
      if (template) this.history.push({ role: 'user', content: text }, { role: 'assistant', content: out.textContent ?? '' });
    });
  }

  /** Stages in this tab. `show` adds the turn and returns the prompt text (chat template applied). */
  private async runHere(s: ChatSettings, userText: string, show: (t: ChatTemplate | null) => string, out: HTMLElement, signal: AbortSignal): Promise<ChatTemplate | null> {
    const { engine, template } = await this.load(s, signal);
    const tokenizer = engine.info!.tokenizer!;
    const prompt = show(template);
    const promptIds = template ? tokenizer.encode(prompt, { addSpecialTokens: false }) : tokenizer.encode(prompt);
    const live = new LiveStats(engine.numStages, statsLaw(s.mode, s.draft));
    const trace: PipelineTrace = { stages: engine.numStages, packets: [], commits: [] };
    const painter = new StatsPainter(this.ui, live, trace, ['mode', `${s.mode}, ${engine.numStages} stage(s) in this tab; ${emulationText(s.emulation)}`]);
    this.ui.status.textContent = `generating (${s.mode})…`;
    const request = { mode: s.mode, promptIds, maxNewTokens: s.maxTokens, sampling: s.sampling, draft: s.draft, width: s.width, depth: s.depth };
    const result = await this.tracked({ prompt: userText, chat: template !== null }, request, out, (onToken) => engine.generate(
      request,
      {
        signal,
        onToken: (t) => {
          onToken(t);
          live.token(performance.now(), t.hit);
          trace.commits.push(t.hit);
          painter.schedule();
        },
        onPacket: (stage, packet) => {
          live.packet(packet);
          trace.packets.push({ stage, packet });
          if (trace.packets.length > 4096) trace.packets.splice(0, 2048);
          painter.schedule();
        },
      },
    ).report);
    painter.finish([...finalRows(result), ['stage busy (ms)', result.stageBusyMs.map((b) => b.toFixed(0)).join(' / ')]]);
    this.ui.status.textContent = `done: ${result.tokens.length} tokens (${result.stopReason})`;
    return template;
  }

  /** The mesh session over the room's stage tabs (waits for them to join and load). */
  private async openMesh(s: ChatSettings, signal: AbortSignal, resume?: MeshOpenOptions['resume']): Promise<{ engine: MeshEngine; modelUrl: string }> {
    const target = choice(this.ui.modelForm, 'target-url', this.ui.targetFiles);
    if (target.kind !== 'url') throw new Error('Stage tabs fetch the model themselves: give a model URL that every tab can reach (picked files stay in this tab).');
    const draft = choice(this.ui.modelForm, 'draft-url', this.ui.draftFiles);
    const modelUrl = new URL(target.url, location.href).href;
    this.ui.status.textContent = `waiting for ${s.stages} stage tab(s) to join and load…`;
    const engine = await this.mesh.ensure({
      modelUrl,
      draftUrl: draft.kind === 'url' && s.draft === 'model' ? new URL(draft.url, location.href).href : null,
      stages: s.stages,
      hopDelayMs: s.hopDelayMs,
      context: s.context,
      emulation: s.emulation,
      onStatus: (st) => renderMeshView(this.ui.meshView, st),
      signal,
      resume,
    });
    const store = await this.store;
    store.setSettings(this.fields());
    store.setRing(engine.layout);
    this.ui.status.textContent = `${s.stages} stage tab(s) ready`;
    return { engine, modelUrl };
  }

  /** Stages in the room's stage tabs (MeshSession); the leader (this tab) runs the draft. */
  private async runMesh(s: ChatSettings, userText: string, show: (t: ChatTemplate | null) => string, out: HTMLElement, signal: AbortSignal): Promise<ChatTemplate | null> {
    const { engine, modelUrl } = await this.openMesh(s, signal);
    const template = chatTemplateOf(await modelSource(modelUrl).readOptionalJson('tokenizer_config.json', signal));
    const prompt = show(template);
    const live = new LiveStats(s.stages, statsLaw(s.mode, s.draft));
    const painter = new StatsPainter(this.ui, live, null, ['mode', `${s.mode}, ${s.stages} stage tab(s), hop delay ${s.hopDelayMs} ms; ${emulationText(s.emulation)}`]);
    this.ui.status.textContent = `generating (${s.mode}, mesh)…`;
    const tokenizer = engine.info!.tokenizer;
    if (!tokenizer) throw new Error('The target model has no tokenizer.json: the chat page needs one to turn text into tokens.');
    const promptIds = template ? tokenizer.encode(prompt, { addSpecialTokens: false }) : tokenizer.encode(prompt);
    const request = { promptIds, maxNewTokens: s.maxTokens, sampling: s.sampling, mode: s.mode, draft: s.draft, width: s.width, depth: s.depth };
    const report = await this.tracked({ prompt: userText, chat: template !== null }, request, out, (onToken) =>
      engine.generate(request, {
        signal,
        onToken: (t) => {
          onToken(t);
          live.token(performance.now(), t.hit);
          painter.schedule();
        },
      }).report,
    );
    (await this.store).setRing(engine.layout);
    if (engine.status) renderMeshView(this.ui.meshView, engine.status);
    painter.finish([
      ...finalRows(report),
      ['stage busy', report.stageStats.map((st) => `${(st.busyFraction * 100).toFixed(0)}%`).join(' / ')],
      ['ring trip p50 / p95', `${report.ringTripP50Ms?.toFixed(1) ?? '–'} / ${report.ringTripP95Ms?.toFixed(1) ?? '–'} ms`],
    ]);
    this.ui.status.textContent = `done: ${report.tokens.length} tokens (${report.stopReason})`;
    return template;
  }
}
