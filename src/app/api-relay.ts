// The leader's side of the OpenAI-compatible API (the server's side: src/server/api-server.ts). A
// leader page (the headless leader of `npm start -- --leader headless`, or a chat page) joins its
// room a second time with meta { role: 'api' }; the server relays each HTTP request to it, checked;
// here the request's prompt is rendered (the model's chat template for chat requests) and encoded,
// queued, run on the page's Engine, and its text streamed back; an abort from the server (its
// client went away, or a stop sequence matched) stops the run.
//
// Requests run through an ApiScheduler. Today that is a FIFO over the Engine (one request at a
// time, as the Engine serves them); a scheduler that batches requests into one pipeline level
// (SpecPipe-DB) can replace it without any change to the relay or the server.
import { SignalClient, type WebSocketFactory } from '../mesh/signal-client.ts';
import { API_ROLE, apiRequestProblem, type ApiChatMessage, type ApiClientMessage, type ApiGenerationRequest, type ApiServerMessage } from '../server/signal-protocol.ts';
import type { ChatTemplate } from '../model/chat-template.ts';
import type { TextTokenizer } from '../model/tokenizer.ts';
import { BadRequestError, errorMessage, SpecpipeError } from '../common/errors.ts';
import type { Engine, GenerationReport, GenerationRequest, TokenEvent } from './engine.ts';

/**
 * The prompt text of a chat request: the model's chat template (with the generation prompt), or, for
 * a plain-continuation model without one, the messages' contents one per line (what the chat page
 * sends such a model is the user's text alone).
 */
export function chatPrompt(template: ChatTemplate | null, messages: readonly ApiChatMessage[]): string {
  return template ? template.render(messages) : messages.map((m) => m.content).join('\n');
}

/** A relayed request's prompt as token ids (a rendered template already holds its special tokens). */
export function apiPromptIds(tokenizer: TextTokenizer, template: ChatTemplate | null, req: ApiGenerationRequest): number[] {
  if (req.kind === 'completion') return tokenizer.encode(req.prompt);
  const text = chatPrompt(template, req.messages);
  return template ? tokenizer.encode(text, { addSpecialTokens: false }) : tokenizer.encode(text);
}

/** One request for a scheduler: what to generate and where its events go. */
export interface ApiJob {
  id: string;
  request: GenerationRequest & { promptIds: number[] };
  /** It left the queue and runs. */
  onStart(): void;
  onToken(e: TokenEvent): void;
  /** It ended: the report (stopReason 'abort' when aborted), or why it could not run. */
  onEnd(outcome: { report: GenerationReport } | { error: unknown }): void;
}

/** Where relayed requests run. */
export interface ApiScheduler {
  submit(job: ApiJob): void;
  /** Drops a queued job (no events), or stops a running one (onEnd follows with stopReason 'abort'). */
  abort(id: string): void;
  /** Jobs queued or running. */
  readonly size: number;
}

/** One request at a time on `engine`, in arrival order. */
export class FifoScheduler implements ApiScheduler {
  private readonly queue: ApiJob[] = [];
  private running: { job: ApiJob; ac: AbortController } | null = null;

  constructor(private readonly engine: Engine) {}

  get size(): number {
    return this.queue.length + (this.running ? 1 : 0);
  }

  submit(job: ApiJob): void {
    this.queue.push(job);
    this.next();
  }

  abort(id: string): void {
    const i = this.queue.findIndex((j) => j.id === id);
    if (i >= 0) this.queue.splice(i, 1);
    else if (this.running?.job.id === id) this.running.ac.abort();
  }

  private next(): void {
    if (this.running) return;
    const job = this.queue.shift();
    if (!job) return;
    const ac = new AbortController();
    this.running = { job, ac };
    job.onStart();
    let report: Promise<GenerationReport>;
    try {
      report = this.engine.generate(job.request, { signal: ac.signal, onToken: (e) => job.onToken(e) }).report;
    } catch (error) {
      report = Promise.reject(error);
    }
    report.then(
      (r) => job.onEnd({ report: r }),
      (error: unknown) => job.onEnd({ error }),
    ).finally(() => {
      this.running = null;
      this.next();
    });
  }
}

/** How each relayed request runs: the mode and speculative settings the leader chose. */
export type ApiRunSettings = Pick<GenerationRequest, 'mode' | 'draft' | 'width' | 'depth'>;

/** Where the leader serves (its room on the signalling server) and with what (engine, template, run settings). */
export interface ApiRelayOptions {
  room: string;
  secret?: string;
  /** The server's token for its own leader (`npm start -- --leader headless`), when it set one. */
  apiToken?: string;
  /** ws(s)://host/signal; default: this page's origin. */
  signalUrl?: string;
  createWebSocket?: WebSocketFactory;
  /** A loaded engine with a tokenizer. */
  engine: Engine;
  /** The model's chat template (null: plain continuation). */
  template: ChatTemplate | null;
  /** The name /v1/models lists and responses carry. */
  modelName: string;
  run: ApiRunSettings;
  /** Default: a FifoScheduler over `engine`. */
  scheduler?: ApiScheduler;
  /** One line per request and per refusal. */
  log?: (line: string) => void;
}

/**
 * A leader serving the API; close() leaves the room (the server answers 503 until another serves).
 * It also leaves when its engine fails (phase 'failed').
 */
export interface ApiRelay {
  readonly scheduler: ApiScheduler;
  /** Resolves when the signalling connection ends (the server went away, or close()). */
  readonly closed: Promise<Error>;
  close(): void;
}

/** The HTTP status the server answers for a request that could not run. */
function statusOf(e: unknown): 400 | 500 | 503 {
  if (e instanceof BadRequestError) return 400;
  // A failed engine (lost device, lost stage) serves nothing more until it is loaded again.
  return e instanceof SpecpipeError ? 503 : 500;
}

/** Joins `room` as its API leader and serves relayed requests on `engine` until close(). */
export async function serveApi(o: ApiRelayOptions): Promise<ApiRelay> {
  const tokenizer = o.engine.info?.tokenizer;
  if (!tokenizer) throw new BadRequestError('the API needs a loaded engine whose model has a tokenizer.json');
  const scheduler = o.scheduler ?? new FifoScheduler(o.engine);
  const log = o.log ?? (() => {});
  const signal = await SignalClient.connect({
    room: o.room,
    secret: o.secret,
    apiToken: o.apiToken,
    url: o.signalUrl,
    createWebSocket: o.createWebSocket,
    meta: { role: API_ROLE, name: 'api leader', model: o.modelName.slice(0, 128) },
  });
  const send = (msg: ApiClientMessage): void => signal.sendApi(msg);

  const start = (id: string, req: ApiGenerationRequest): void => {
    let promptIds: number[];
    try {
      promptIds = apiPromptIds(tokenizer, o.template, req);
    } catch (e) {
      return send({ type: 'api-error', id, status: 400, message: `the prompt could not be encoded: ${errorMessage(e)}` });
    }
    // Text of tokens that completed no character yet travels with the next token that does.
    let tokens = 0;
    scheduler.submit({
      id,
      request: { ...o.run, promptIds, maxNewTokens: req.maxTokens, sampling: { temperature: req.temperature, topK: 0, topP: req.topP, seed: req.seed } },
      onStart: () => send({ type: 'api-start', id, promptTokens: promptIds.length }),
      onToken: (e) => {
        tokens++;
        if (e.text === '') return;
        send({ type: 'api-chunk', id, text: e.text, tokens });
        tokens = 0;
      },
      onEnd: (out) => {
        if ('error' in out) {
          log(`[api] ${id} failed: ${errorMessage(out.error)}`);
          send({ type: 'api-error', id, status: statusOf(out.error), message: errorMessage(out.error) });
          // A failed engine (lost device or stage) serves nothing more: leave, so the server says so (503).
          if (o.engine.phase === 'failed') signal.close();
          return;
        }
        const r = out.report;
        if (tokens > 0) send({ type: 'api-chunk', id, text: '', tokens });
        // After an abort the server has already answered its client: it drops this.
        send({ type: 'api-done', id, finish: r.stopReason === 'length' ? 'length' : 'stop', promptTokens: promptIds.length, completionTokens: r.tokens.length });
        log(`[api] ${id}: ${r.tokens.length} tokens (${r.stopReason})`);
      },
    });
  };

  const onApi = (msg: ApiServerMessage): void => {
    if (msg.type === 'api-abort') return scheduler.abort(msg.id);
    const problem = apiRequestProblem(msg.request);
    if (problem) return send({ type: 'api-error', id: msg.id, status: 400, message: problem });
    start(msg.id, msg.request);
  };
  signal.on('api', (msg) => {
    if (typeof msg.id !== 'string') return;
    try {
      onApi(msg);
    } catch (e) {
      send({ type: 'api-error', id: msg.id, status: 500, message: errorMessage(e) });
    }
  });
  const closed = new Promise<Error>((resolve) => signal.once('close', resolve));
  log(`[api] serving room ${o.room} (${o.modelName}, ${o.run.mode})`);
  return {
    scheduler,
    closed,
    close: () => signal.close(),
  };
}
