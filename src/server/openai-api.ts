// The OpenAI-compatible API's pure half: request bodies of /v1/chat/completions and /v1/completions
// parsed and checked into the relay's ApiGenerationRequest, stop sequences applied to streamed text,
// and every response body (chunks, whole responses, errors) in OpenAI's shapes. No I/O here:
// src/server/api-server.ts does the HTTP and the relay.
import { API_MAX_MESSAGES, API_MAX_TEXT_CHARS, API_MAX_TOKENS, type ApiChatMessage, type ApiFinishReason, type ApiGenerationRequest } from './signal-protocol.ts';

/** An API error as OpenAI reports it: the HTTP status and `{ error: { message, type, param, code } }`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = status === 400 ? 'invalid_request_error' : 'server_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** OpenAI's error body. */
export function errorBody(e: ApiError): { error: { message: string; type: string; param: string | null; code: string | null } } {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
}

/** What one request asks for: the leader's part (`request`) and the server's (stream, stop). */
export interface ParsedApiRequest {
  request: ApiGenerationRequest;
  stream: boolean;
  /** stream_options.include_usage: a last chunk with `usage`. */
  includeUsage: boolean;
  /** Stop sequences (at most 4); the text ends before the first one found. */
  stop: string[];
}

/** max_tokens when the request gives none. */
export const DEFAULT_MAX_TOKENS = 256;
const MAX_STOP = 4;

const bad = (param: string, message: string): ApiError => new ApiError(400, message, 'invalid_request_error', param);
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function numberIn(body: Record<string, unknown>, name: string, fallback: number, ok: (n: number) => boolean, range: string): number {
  const v = body[name];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !ok(v)) throw bad(name, `${name} must be a number ${range}, got ${JSON.stringify(v)}`);
  return v;
}

/** A u32 seed from any integer (OpenAI takes 64-bit seeds; equal seeds stay equal). */
export function seedOf(v: unknown, fallback: number): number {
  if (v === undefined || v === null) return fallback >>> 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw bad('seed', `seed must be an integer, got ${JSON.stringify(v)}`);
  return ((v % 2 ** 32) + 2 ** 32) % 2 ** 32;
}

function stopOf(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > MAX_STOP || !list.every((s): s is string => typeof s === 'string' && s.length > 0 && s.length <= 256)) {
    throw bad('stop', `stop must be a non-empty string or an array of at most ${MAX_STOP} of them (256 characters each)`);
  }
  return list;
}

/** Options OpenAI has that this server cannot honour: refused rather than silently ignored. */
const UNSUPPORTED = ['logprobs', 'top_logprobs', 'echo', 'best_of', 'suffix', 'tools', 'functions', 'logit_bias'];

/** The fields both endpoints share. `defaultSeed`: the seed of a request that gives none. */
function common(body: unknown, defaultSeed: number): { b: Record<string, unknown>; shared: Omit<ApiGenerationRequest, 'kind' | 'messages' | 'prompt'>; rest: Omit<ParsedApiRequest, 'request'> } {
  if (!isRecord(body)) throw bad('body', 'the request body must be a JSON object');
  for (const k of UNSUPPORTED) {
    const v = body[k];
    if (v !== undefined && v !== null && v !== false && !(Array.isArray(v) && v.length === 0)) throw bad(k, `${k} is not supported by this server`);
  }
  if (body.model !== undefined && typeof body.model !== 'string') throw bad('model', 'model must be a string');
  numberIn(body, 'n', 1, (x) => x === 1, 'equal to 1 (one choice per request)');
  const maxName = body.max_completion_tokens !== undefined && body.max_completion_tokens !== null ? 'max_completion_tokens' : 'max_tokens';
  const maxTokens = numberIn(body, maxName, DEFAULT_MAX_TOKENS, (x) => Number.isInteger(x) && x >= 1 && x <= API_MAX_TOKENS, `(an integer) in 1..${API_MAX_TOKENS}`);
  const temperature = numberIn(body, 'temperature', 1, (x) => x >= 0 && x <= 2, 'in 0..2');
  const topP = numberIn(body, 'top_p', 1, (x) => x > 0 && x <= 1, 'in (0, 1]');
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') throw bad('stream', 'stream must be a boolean');
  const opts = body.stream_options;
  if (opts !== undefined && opts !== null && !isRecord(opts)) throw bad('stream_options', 'stream_options must be an object');
  return {
    b: body,
    shared: { maxTokens, temperature, topP, seed: seedOf(body.seed, defaultSeed) },
    rest: { stream: body.stream === true, includeUsage: isRecord(opts) && opts.include_usage === true, stop: stopOf(body.stop) },
  };
}

/** A message's content: a string, or OpenAI's list of parts of which only text parts are taken. */
function contentOf(v: unknown, i: number): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    return v
      .map((p) => {
        if (isRecord(p) && p.type === 'text' && typeof p.text === 'string') return p.text;
        throw bad(`messages[${i}].content`, 'only text content parts are supported');
      })
      .join('');
  }
  throw bad(`messages[${i}].content`, 'content must be a string or a list of text parts');
}

/** POST /v1/chat/completions' body, checked. */
export function parseChatBody(body: unknown, defaultSeed: number): ParsedApiRequest {
  const { b, shared, rest } = common(body, defaultSeed);
  if (!Array.isArray(b.messages) || b.messages.length === 0) throw bad('messages', 'messages must be a non-empty array');
  if (b.messages.length > API_MAX_MESSAGES) throw bad('messages', `at most ${API_MAX_MESSAGES} messages`);
  const messages: ApiChatMessage[] = b.messages.map((m: unknown, i) => {
    if (!isRecord(m)) throw bad(`messages[${i}]`, 'each message must be an object');
    // 'developer' is OpenAI's newer name for 'system'.
    const role = m.role === 'developer' ? 'system' : m.role;
    if (role !== 'system' && role !== 'user' && role !== 'assistant') throw bad(`messages[${i}].role`, 'role must be system, developer, user or assistant');
    return { role, content: contentOf(m.content, i) };
  });
  if (messages.reduce((a, m) => a + m.content.length, 0) > API_MAX_TEXT_CHARS) throw bad('messages', `messages longer than ${API_MAX_TEXT_CHARS} characters in all`);
  return { request: { kind: 'chat', messages, ...shared }, ...rest };
}

/** POST /v1/completions' body, checked (one prompt string; token-id prompts are refused). */
export function parseCompletionBody(body: unknown, defaultSeed: number): ParsedApiRequest {
  const { b, shared, rest } = common(body, defaultSeed);
  const p = Array.isArray(b.prompt) && b.prompt.length === 1 ? b.prompt[0] : b.prompt;
  if (typeof p !== 'string') throw bad('prompt', 'prompt must be a string (or an array of one string)');
  if (p.length > API_MAX_TEXT_CHARS) throw bad('prompt', `prompt longer than ${API_MAX_TEXT_CHARS} characters`);
  return { request: { kind: 'completion', prompt: p, ...shared }, ...rest };
}

/**
 * Applies stop sequences to text that arrives in pieces: text that could be the start of a stop
 * sequence is held back until the next piece decides, and nothing from the first stop on is ever
 * released (OpenAI's output excludes the stop sequence).
 */
export class StopScanner {
  private held = '';
  stopped = false;

  constructor(private readonly stops: readonly string[]) {}

  /** Adds `text`; returns what may be sent now. After a stop is found, returns ''. */
  push(text: string): string {
    if (this.stopped) return '';
    const buf = this.held + text;
    let cut = -1;
    for (const s of this.stops) {
      const at = buf.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.stopped = true;
      this.held = '';
      return buf.slice(0, cut);
    }
    let keep = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, buf.length); k > keep; k--) {
        if (buf.endsWith(s.slice(0, k))) {
          keep = k;
          break;
        }
      }
    }
    this.held = buf.slice(buf.length - keep);
    return buf.slice(0, buf.length - keep);
  }

  /** At the end of the generation: what was held back (it did not turn into a stop sequence). */
  flush(): string {
    const out = this.stopped ? '' : this.held;
    this.held = '';
    return out;
  }
}

/** Token counts of a finished request, as OpenAI reports them. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export const usageOf = (prompt: number, completion: number): Usage => ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });

/** What every body of one response repeats. */
export interface ResponseMeta {
  kind: ApiGenerationRequest['kind'];
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
}

/** One streamed chunk: `text` (a delta; the first chat chunk also carries the role), or the end (`finish`), or usage alone. */
export function chunkBody(m: ResponseMeta, part: { text?: string; role?: boolean; finish?: ApiFinishReason; usage?: Usage }): Record<string, unknown> {
  const finish = part.finish ?? null;
  const base = { id: m.id, created: m.created, model: m.model };
  const choices =
    part.usage !== undefined
      ? []
      : m.kind === 'chat'
        ? [{ index: 0, delta: { ...(part.role ? { role: 'assistant' } : {}), ...(part.text !== undefined ? { content: part.text } : {}) }, logprobs: null, finish_reason: finish }]
        : [{ index: 0, text: part.text ?? '', logprobs: null, finish_reason: finish }];
  return {
    ...base,
    object: m.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion',
    choices,
    ...(part.usage !== undefined ? { usage: part.usage } : {}),
  };
}

/** The whole (non-stream) response. */
export function responseBody(m: ResponseMeta, text: string, finish: ApiFinishReason, usage: Usage): Record<string, unknown> {
  const choice =
    m.kind === 'chat'
      ? { index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: finish }
      : { index: 0, text, logprobs: null, finish_reason: finish };
  return { id: m.id, object: m.kind === 'chat' ? 'chat.completion' : 'text_completion', created: m.created, model: m.model, choices: [choice], usage };
}

/** One server-sent event carrying `body` as JSON. */
export const sseEvent = (body: unknown): string => `data: ${JSON.stringify(body)}\n\n`;

/** The last server-sent event of a stream. */
export const SSE_DONE = 'data: [DONE]\n\n';
