// The chat page's controller: settings -> load (progress) -> generate (streaming, stop) -> stats.
import type { TextTokenizer } from '../model/index.ts';
import { tokensPerSecond } from '../app/local-run.ts';
import type { LocalEngine } from '../app/local-engine.ts';
import { byId, el, errorText } from './dom.ts';
import { parseSettings, type ChatSettings } from './settings.ts';
import { LocalSession, type LoadedSession, type ModelChoice } from './local-session.ts';
import { ProgressBars } from './progress.ts';
import { LiveStats } from '../app/live-stats.ts';
import { renderStats } from './stats-panel.ts';
import { pipelineSvg, type PipelineTrace } from './pipeline-view.ts';
import type { ChatMessage } from './chat-template.ts';

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
    progress: new ProgressBars(byId('progress', HTMLElement)),
    modelInfo: byId('model-info', HTMLElement),
  };
}

function choice(form: HTMLFormElement, urlField: string, files: HTMLInputElement): ModelChoice {
  if (files.files && files.files.length > 0) return { kind: 'files', files: Array.from(files.files) };
  return { kind: 'url', url: String(new FormData(form).get(urlField) ?? '') };
}

export class ChatApp {
  private readonly ui = findUi();
  private readonly session = new LocalSession();
  private readonly history: ChatMessage[] = [];
  private running: AbortController | null = null;

  start(): void {
    this.ui.send.addEventListener('click', () => void this.submit());
    this.ui.prompt.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) void this.submit();
    });
    this.ui.stop.addEventListener('click', () => this.running?.abort());
    this.ui.modelForm.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.guard(async (signal) => void (await this.load(parseSettings(this.field(this.ui.settings)), signal)));
    });
    this.setRunning(false);
  }

  private field(form: HTMLFormElement): (name: string) => string {
    const data = new FormData(form);
    return (name) => String(data.get(name) ?? '');
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
      if (!ac.signal.aborted) {
        this.ui.error.textContent = errorText(e);
        this.ui.error.hidden = false;
        this.ui.status.textContent = 'error';
      } else {
        this.ui.status.textContent = 'stopped';
      }
    } finally {
      this.running = null;
      this.setRunning(false);
    }
  }

  private async load(s: ChatSettings, signal: AbortSignal): Promise<LoadedSession> {
    const wantsDraft = (s.mode === 'specpipe' || s.mode === 'tree') && s.draft === 'model';
    this.ui.status.textContent = 'loading the model…';
    const t0 = performance.now();
    let fresh = false;
    const loaded = await this.session.ensure({
      target: choice(this.ui.modelForm, 'target-url', this.ui.targetFiles),
      draft: wantsDraft ? choice(this.ui.modelForm, 'draft-url', this.ui.draftFiles) : null,
      stages: s.stages,
      context: s.context,
      onProgress: (part, done, total) => {
        if (!fresh) this.ui.progress.clear();
        fresh = true;
        this.ui.progress.update(part, done, total);
      },
      signal,
    });
    const e = loaded.engine;
    const spec = e.model.spec;
    this.ui.modelInfo.textContent =
      `${spec.numLayers} layers, vocabulary ${spec.vocabSize}, ${(e.weightBytes / 2 ** 20).toFixed(1)} MiB of target weights on ${e.adapter}; ` +
      `stages in this tab: ${e.stageDescriptions.join(' | ')}; ${e.hasDraft ? 'draft model loaded' : 'no draft model'}; ` +
      (loaded.template ? 'chat template: yes' : 'plain continuation (no chat template)');
    if (fresh) this.ui.status.textContent = `model ready (loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s)`;
    return loaded;
  }

  private async submit(): Promise<void> {
    const text = this.ui.prompt.value;
    if (text.trim() === '') return;
    await this.guard(async (signal) => {
      const s = parseSettings(this.field(this.ui.settings));
      const { engine, template } = await this.load(s, signal);
      const tokenizer = engine.model.tokenizer as TextTokenizer;
      const messages: ChatMessage[] = [...this.history, { role: 'user', content: text }];
      const promptIds = template ? tokenizer.encode(template.render(messages), { addSpecialTokens: false }) : tokenizer.encode(text);
      const out = el('span', { class: 'assistant' });
      this.ui.transcript.append(
        el('div', { class: 'turn' }, template ? el('div', { class: 'user' }, text) : el('span', { class: 'prompt' }, text), out),
      );
      await this.generate(s, engine, promptIds, out, signal);
      if (template) this.history.push({ role: 'user', content: text }, { role: 'assistant', content: out.textContent ?? '' });
    });
  }

  private async generate(s: ChatSettings, engine: LocalEngine, promptIds: number[], out: HTMLElement, signal: AbortSignal): Promise<void> {
    const speculative = s.mode === 'specpipe' || s.mode === 'tree';
    const live = new LiveStats(engine.numStages, speculative && s.draft !== 'none');
    const trace: PipelineTrace = { stages: engine.numStages, packets: [], commits: [] };
    const streamer = engine.model.tokenizer!.stream();
    let frame = 0;
    let extra: [string, string][] = [['mode', `${s.mode}, ${engine.numStages} stage(s) in this tab`]];
    // Late stage packets (the final verdict) may repaint after the run: `extra` keeps the final rows.
    const paint = (): void => {
      frame = 0;
      renderStats(this.ui.stats, live.snapshot(), extra);
      this.ui.pipeline.innerHTML = pipelineSvg(trace);
    };
    const schedule = (): void => {
      if (!frame) frame = requestAnimationFrame(paint);
    };
    this.ui.status.textContent = `generating (${s.mode})…`;
    const result = await engine.run({
      mode: s.mode,
      prompt: promptIds,
      maxNewTokens: s.maxTokens,
      eosTokens: engine.model.spec.eosTokenIds,
      sampling: s.sampling,
      draft: speculative ? s.draft : 'none',
      width: s.width,
      maxDepth: s.depth,
      treeDepth: s.depth,
      treeWidth: s.width,
      signal,
      onToken: (tok, _i, hit) => {
        out.textContent += streamer.push(tok);
        live.token(performance.now(), hit);
        trace.commits.push(hit);
        schedule();
      },
      onPacket: (stage, packet) => {
        live.packet(packet);
        trace.packets.push({ stage, packet });
        if (trace.packets.length > 4096) trace.packets.splice(0, 2048);
        schedule();
      },
    });
    const m = result.metrics;
    extra = [
      ...extra,
      ['first token', m.ttftMs === null ? '–' : `${m.ttftMs.toFixed(0)} ms`],
      ['decode tokens/s (final)', tokensPerSecond(result.tokens.length, m)?.toFixed(1) ?? '–'],
      ['stage busy (ms)', result.stageBusyMs.map((b) => b.toFixed(0)).join(' / ')],
      ['stop', result.stopReason],
    ];
    cancelAnimationFrame(frame);
    paint();
    this.ui.status.textContent = `done: ${result.tokens.length} tokens (${result.stopReason})`;
  }
}
