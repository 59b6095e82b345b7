// The OpenAI-compatible API of `npm start`: /v1/chat/completions, /v1/completions and /v1/models
// over HTTP, each request relayed over the signalling WebSocket to the room's API leader (the member
// whose meta.role is API_ROLE: a chat page or the headless leader of `--leader headless`), which
// queues it, runs it on its Engine and streams the text back. This side owns OpenAI's semantics:
// checks (openai-api.ts), stop sequences, usage, server-sent events, CORS, the API key, and the
// limits (a body size, requests per address, requests waiting at the leader). A client that goes
// away aborts its request at the leader.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { API_ROLE, type ApiClientMessage, type ApiFinishReason, type ApiServerMessage } from './signal-protocol.ts';
import type { ApiRelayHooks, SignallingServer } from './signalling.ts';
import { addressKey, PerAddress, TokenBucket } from './limits.ts';
import {
  ApiError,
  chunkBody,
  errorBody,
  parseChatBody,
  parseCompletionBody,
  responseBody,
  SSE_DONE,
  sseEvent,
  StopScanner,
  usageOf,
  type ParsedApiRequest,
  type ResponseMeta,
} from './openai-api.ts';

/** The API's limits (`npm start -- --<limit> N`, like SIGNALLING_LIMITS and HTTP_LIMITS). */
export interface ApiLimits {
  /** Requests relayed to the leader and not finished (queued or running); one more is answered 429. */
  maxQueuedRequests: number;
  /** Largest request body (bytes); a larger one is answered 413. */
  maxBodyBytes: number;
  /** API requests per address: a burst of `apiRequestBurst`, then `apiRequestsPerMinute` a minute (429). */
  apiRequestBurst: number;
  apiRequestsPerMinute: number;
}

export const API_LIMITS: Readonly<ApiLimits> = {
  maxQueuedRequests: 32,
  maxBodyBytes: 1 << 20,
  apiRequestBurst: 60,
  apiRequestsPerMinute: 600,
};

/** The room the API serves, its key, its log; limits default to API_LIMITS. */
export interface ApiServerOptions extends Partial<ApiLimits> {
  /** The room whose API leader serves the requests. */
  room: string;
  /** When set, requests must carry `Authorization: Bearer <apiKey>` (401 otherwise). */
  apiKey?: string;
  /** One line per refusal and per relayed request, keyed by the client's address. */
  log?: (key: string, line: string) => void;
}

/** The API's HTTP handler, tied to the signalling service that reaches the leader. */
export interface ApiServer {
  /** Give these to createSignallingServer({ api }): the leader's answers and departures. */
  readonly hooks: ApiRelayHooks;
  /** The signalling service the requests travel through (set once, before serving). */
  bind(signalling: Pick<SignallingServer, 'rooms' | 'sendTo'>): void;
  /** Handles `req` when its path is under /v1 (true), else leaves it (false). */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Requests relayed to the leader and not finished. */
  pending(): number;
}

/** A relayed request, from the leader's first answer to the end of the HTTP response. */
interface Job {
  leader: string;
  onMessage(msg: ApiClientMessage): void;
  /** The leader left or the relay failed: answer 503 (or end the stream with the error). */
  fail(e: ApiError): void;
}

const hash = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
/** Request headers a browser may send cross-origin (the `openai` client adds x-stainless-* ones). */
const HEADER_LIST = /^[A-Za-z0-9-]+(?:\s*,\s*[A-Za-z0-9-]+)*$/;

export function createApiServer(opts: ApiServerOptions): ApiServer {
  const L: ApiLimits = { ...API_LIMITS };
  for (const k of Object.keys(API_LIMITS) as (keyof ApiLimits)[]) L[k] = opts[k] ?? L[k];
  const log = opts.log ?? (() => {});
  const keyHash = opts.apiKey === undefined ? null : hash(opts.apiKey);
  const jobs = new Map<string, Job>();
  const rates = new PerAddress<TokenBucket>(
    () => new TokenBucket(L.apiRequestBurst, L.apiRequestsPerMinute),
    (b) => b.full(),
  );
  let link: Pick<SignallingServer, 'rooms' | 'sendTo'> | null = null;

  const leader = (): { id: string; model: string } | null => {
    const peer = link?.rooms().find((r) => r.room === opts.room)?.peers.find((p) => p.meta.role === API_ROLE);
    return peer ? { id: peer.id, model: typeof peer.meta.model === 'string' ? peer.meta.model : 'specpipe-mesh' } : null;
  };
  const toLeader = (id: string, msg: ApiServerMessage): boolean => link?.sendTo(opts.room, id, msg) ?? false;

  const cors = (req: IncomingMessage, res: ServerResponse): void => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
    const asked = req.headers['access-control-request-headers'];
    res.setHeader('Access-Control-Allow-Headers', typeof asked === 'string' && HEADER_LIST.test(asked) ? asked : 'Authorization, Content-Type');
    res.setHeader('Access-Control-Max-Age', '600');
  };
  const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { 'Content-Type': 'application/json', ...headers }).end(JSON.stringify(body));
  };
  const refuse = (req: IncomingMessage, res: ServerResponse, e: ApiError, headers: Record<string, string> = {}): void => {
    const key = addressKey(req.socket.remoteAddress);
    log(key, `[api] refused ${key}: ${e.status} ${req.method ?? '?'} ${String(req.url).slice(0, 100)}: ${e.message}`);
    // A body not read to its end: this connection cannot carry another request.
    sendJson(res, e.status, errorBody(e), req.complete ? headers : { ...headers, Connection: 'close' });
  };

  const authorized = (req: IncomingMessage): boolean => {
    if (!keyHash) return true;
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    return m !== null && timingSafeEqual(hash(m[1].trim()), keyHash);
  };

  /** The body as JSON, at most maxBodyBytes (413) and valid JSON (400). */
  const readJson = (req: IncomingMessage): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      let size = 0;
      req.on('data', (d: Buffer) => {
        size += d.length;
        // Past the limit the rest is read and dropped (the time limits bound it), so the 413 arrives.
        if (size > L.maxBodyBytes) reject(new ApiError(413, `request body larger than ${L.maxBodyBytes} bytes`, 'invalid_request_error', null, 'body_too_large'));
        else parts.push(d);
      });
      req.on('error', reject);
      req.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(parts).toString('utf8')));
        } catch {
          reject(new ApiError(400, 'the request body is not valid JSON', 'invalid_request_error'));
        }
      });
    });

  /** Relays one checked request and answers it (streamed or whole). */
  const relay = (req: IncomingMessage, res: ServerResponse, kind: 'chat' | 'completion', parsed: ParsedApiRequest): void => {
    const key = addressKey(req.socket.remoteAddress);
    const lead = leader();
    if (!lead) return refuse(req, res, new ApiError(503, `no leader in room ${opts.room}: open the leader page or start with --leader headless`, 'server_error', null, 'no_leader'), { 'Retry-After': '5' });
    if (jobs.size >= L.maxQueuedRequests) {
      return refuse(req, res, new ApiError(429, `${jobs.size} requests are waiting for the leader (limit ${L.maxQueuedRequests}); try again later`, 'rate_limit_error', null, 'queue_full'), { 'Retry-After': '2' });
    }
    const id = randomBytes(12).toString('base64url');
    const meta: ResponseMeta = { kind, id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${id}`, created: Math.floor(Date.now() / 1000), model: lead.model };
    const stop = new StopScanner(parsed.stop);
    let text = '';
    let promptTokens = 0;
    let completionTokens = 0;
    let ended = false;
    // A queued request may wait longer than the idle limit: the leader's queue bounds how many do.
    req.socket.setTimeout(0);
    // A stream starts with the first text from the leader: until then a refusal (the engine's
    // checks run when the request starts) is still an HTTP status.
    const begin = (): void => {
      if (!parsed.stream || res.headersSent) return;
      res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
      if (kind === 'chat') res.write(sseEvent(chunkBody(meta, { role: true, text: '' })));
    };
    const emit = (piece: string): void => {
      if (piece === '') return;
      text += piece;
      if (parsed.stream) res.write(sseEvent(chunkBody(meta, { text: piece })));
    };
    const end = (): void => {
      ended = true;
      jobs.delete(id);
    };
    const finish = (reason: ApiFinishReason): void => {
      end();
      const usage = usageOf(promptTokens, completionTokens);
      log(key, `[api] ${meta.id} for ${key}: ${completionTokens} tokens (${reason})`);
      if (!parsed.stream) return sendJson(res, 200, responseBody(meta, text, reason, usage));
      res.write(sseEvent(chunkBody(meta, { finish: reason })));
      if (parsed.includeUsage) res.write(sseEvent(chunkBody(meta, { usage })));
      res.end(SSE_DONE);
    };
    const fail = (e: ApiError): void => {
      end();
      log(key, `[api] ${meta.id} for ${key} failed: ${e.status} ${e.message}`);
      if (!res.headersSent) return sendJson(res, e.status, errorBody(e));
      // Mid-stream: OpenAI's clients raise an error event as an exception.
      res.end(sseEvent(errorBody(e)));
    };
    jobs.set(id, {
      leader: lead.id,
      fail,
      onMessage(msg) {
        if (msg.type === 'api-chunk' || msg.type === 'api-done') begin();
        if (msg.type === 'api-start') promptTokens = msg.promptTokens;
        else if (msg.type === 'api-chunk') {
          completionTokens += msg.tokens;
          emit(stop.push(msg.text));
          if (stop.stopped) {
            toLeader(lead.id, { type: 'api-abort', id });
            finish('stop');
          }
        } else if (msg.type === 'api-done') {
          promptTokens = msg.promptTokens;
          completionTokens = msg.completionTokens;
          emit(stop.flush());
          finish(msg.finish);
        } else fail(new ApiError(msg.status, `the leader could not run the request: ${msg.message}`, msg.status === 400 ? 'invalid_request_error' : 'server_error'));
      },
    });
    res.once('close', () => {
      if (ended) return;
      end();
      log(key, `[api] ${meta.id}: ${key} went away; aborted at the leader`);
      toLeader(lead.id, { type: 'api-abort', id });
    });
    if (!toLeader(lead.id, { type: 'api-request', id, request: parsed.request })) fail(new ApiError(503, 'the leader left', 'server_error', null, 'no_leader'));
  };

  const route = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    const key = addressKey(req.socket.remoteAddress);
    if (!authorized(req)) return refuse(req, res, new ApiError(401, 'missing or wrong API key (Authorization: Bearer KEY)', 'invalid_request_error', null, 'invalid_api_key'));
    const bucket = rates.get(key);
    if (!bucket.take()) {
      return refuse(req, res, new ApiError(429, `too many requests from ${key}`, 'rate_limit_error', null, 'rate_limit_exceeded'), { 'Retry-After': String(Math.ceil(bucket.waitMs() / 1000)) });
    }
    if (path === '/v1/models') {
      if (req.method !== 'GET') return refuse(req, res, new ApiError(405, 'use GET', 'invalid_request_error'), { Allow: 'GET, OPTIONS' });
      const lead = leader();
      return sendJson(res, 200, { object: 'list', data: lead ? [{ id: lead.model, object: 'model', created: 0, owned_by: 'specpipe-mesh' }] : [] });
    }
    const kind = path === '/v1/chat/completions' ? 'chat' : path === '/v1/completions' ? 'completion' : null;
    if (!kind) return refuse(req, res, new ApiError(404, `no endpoint ${path.slice(0, 100)} (this server has /v1/chat/completions, /v1/completions, /v1/models)`, 'invalid_request_error', null, 'unknown_url'));
    if (req.method !== 'POST') return refuse(req, res, new ApiError(405, 'use POST', 'invalid_request_error'), { Allow: 'POST, OPTIONS' });
    const body = await readJson(req);
    const seed = randomBytes(4).readUInt32LE(0);
    relay(req, res, kind, kind === 'chat' ? parseChatBody(body, seed) : parseCompletionBody(body, seed));
  };

  return {
    hooks: {
      message(room, from, msg) {
        if (room !== opts.room) return;
        const job = jobs.get(msg.id);
        // Answers for a request that already ended (stopped, aborted) are expected: dropped.
        if (job?.leader === from) job.onMessage(msg);
      },
      left(room, id) {
        if (room !== opts.room) return;
        for (const job of [...jobs.values()]) if (job.leader === id) job.fail(new ApiError(503, 'the leader left the room', 'server_error', null, 'no_leader'));
      },
    },
    bind(s) {
      link = s;
    },
    pending: () => jobs.size,
    handle(req, res) {
      let path: string;
      try {
        path = new URL(req.url ?? '/', 'http://x').pathname;
      } catch {
        return false; // the static handler answers a bad URL
      }
      if (path !== '/v1' && !path.startsWith('/v1/')) return false;
      cors(req, res);
      if (req.method === 'OPTIONS') {
        res.writeHead(204).end();
        return true;
      }
      route(req, res, path).catch((e: unknown) => {
        if (e instanceof ApiError) return refuse(req, res, e);
        const key = addressKey(req.socket.remoteAddress);
        log(key, `[api] error serving ${key}: ${e instanceof Error ? e.message : String(e)}`);
        if (!res.headersSent) sendJson(res, 500, errorBody(new ApiError(500, 'server error')));
        else res.destroy();
      });
      return true;
    },
  };
}
