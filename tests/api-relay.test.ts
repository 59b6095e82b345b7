// The API's relay in one process, without a browser: the HTTP side (createApiServer) and the
// signalling service of `npm start`, and the leader side (serveApi over the `ws` WebSocket) on a
// scripted Engine whose tokens are a function of (prompt, seed, position). What is checked here is
// the plumbing (queue order, stop sequences, aborts reaching the Engine, limits, refusals, a leader
// that leaves); that the real Engine gives the same tokens alone and with others in flight is
// e2e/openai-api.spec.ts.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createApiServer, type ApiServer } from '../src/server/api-server.ts';
import { createSignallingServer, type SignallingServer } from '../src/server/signalling.ts';
import { apiPromptIds, chatPrompt, serveApi, type ApiRelay } from '../src/app/api-relay.ts';
import { TokenStream, type Engine, type GenerateCallOptions, type GenerationReport, type GenerationRequest } from '../src/app/engine.ts';
import type { TextTokenizer } from '../src/model/tokenizer.ts';
import { chatTemplateOf } from '../src/model/chat-template.ts';
import { BadRequestError, DeviceLostError } from '../src/common/errors.ts';
import type { WebSocketLike } from '../src/mesh/signal-client.ts';

/** One character per token: id = char code. */
const tokenizer = {
  encode: (t: string) => [...t].map((c) => c.charCodeAt(0)),
  decode: (ids: readonly number[]) => String.fromCharCode(...ids),
} as unknown as TextTokenizer;

/** The scripted model's token at `position`: a letter that depends on the prompt, seed and position. */
const tokenAt = (promptIds: number[], seed: number, position: number): number => 97 + ((promptIds.reduce((a, b) => a + b, 0) + seed * 7 + position * 3) % 26);
const expected = (prompt: string, seed: number, n: number): string => {
  const ids = tokenizer.encode(prompt);
  return String.fromCharCode(...Array.from({ length: n }, (_, i) => tokenAt(ids, seed, ids.length + i)));
};

/** An Engine that emits one scripted token every `tokenMs`, honours the AbortSignal, and records what it ran. */
class ScriptedEngine implements Engine {
  readonly placement = 'tab';
  phase: Engine['phase'] = 'ready';
  readonly info = { tokenizer } as Engine['info'];
  tokenMs = 5;
  readonly started: string[] = [];
  readonly aborted: string[] = [];
  running = 0;
  maxRunning = 0;
  load(): never {
    throw new Error('loaded already');
  }
  dispose(): void {}
  generate(req: GenerationRequest, opts: GenerateCallOptions = {}): TokenStream<GenerationReport> {
    const ids = req.promptIds ?? [];
    const name = tokenizer.decode(ids);
    return new TokenStream<GenerationReport>(async (emit) => {
      if (ids.length > 64) throw new BadRequestError('prompt longer than the context');
      if (name === 'lose the device') {
        this.phase = 'failed';
        throw new DeviceLostError('unknown', 'the GPU device was lost');
      }
      this.started.push(name);
      this.maxRunning = Math.max(this.maxRunning, ++this.running);
      const tokens: number[] = [];
      let stopReason: GenerationReport['stopReason'] = 'length';
      try {
        while (tokens.length < req.maxNewTokens) {
          await new Promise((r) => setTimeout(r, this.tokenMs));
          if (opts.signal?.aborted) {
            this.aborted.push(name);
            stopReason = 'abort';
            break;
          }
          const t = tokenAt(ids, req.sampling.seed, ids.length + tokens.length);
          tokens.push(t);
          const e = { token: t, index: tokens.length - 1, text: String.fromCharCode(t), hit: false };
          opts.onToken?.(e);
          emit(e);
        }
      } finally {
        this.running--;
      }
      return { tokens, stopReason } as unknown as GenerationReport;
    });
  }
}

const ROOM = 'api-room';
const KEY = 'sk-test-key';
let server: Server;
let signalling: SignallingServer;
let api: ApiServer;
let base = '';
const engine = new ScriptedEngine();
let relay: ApiRelay | null = null;
const lines: string[] = [];

const lead = async (): Promise<ApiRelay> => {
  relay = await serveApi({
    room: ROOM,
    signalUrl: base.replace('http', 'ws') + '/signal',
    createWebSocket: (u) => new WebSocket(u) as unknown as WebSocketLike,
    engine,
    template: null,
    modelName: 'scripted',
    run: { mode: 'single' },
  });
  return relay;
};

const post = (path: string, body: unknown, key: string | null = KEY, signal?: AbortSignal): Promise<Response> =>
  fetch(base + path, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(key ? { Authorization: `Bearer ${key}` } : {}) }, body: typeof body === 'string' ? body : JSON.stringify(body), signal });

/** The data events of a server-sent event stream. */
async function events(res: Response): Promise<unknown[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
    .map((e) => (e === 'data: [DONE]' ? '[DONE]' : JSON.parse(e.slice(6))));
}

beforeAll(async () => {
  api = createApiServer({ room: ROOM, apiKey: KEY, maxQueuedRequests: 3, log: (_, l) => lines.push(l) });
  signalling = createSignallingServer({ reservedRooms: [ROOM], api: api.hooks });
  api.bind(signalling);
  server = createServer((req, res) => {
    if (!api.handle(req, res)) res.writeHead(404).end();
  });
  signalling.attach(server, '/signal');
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  engine.tokenMs = 5;
});

afterAll(async () => {
  relay?.close();
  await signalling.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('the API relay', () => {
  it('answers 503 while no leader serves the room, and lists no model', async () => {
    const res = await post('/v1/completions', { prompt: 'x' });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('no_leader');
    expect(await (await fetch(base + '/v1/models', { headers: { Authorization: `Bearer ${KEY}` } })).json()).toEqual({ object: 'list', data: [] });
    await lead();
    expect(await (await fetch(base + '/v1/models', { headers: { Authorization: `Bearer ${KEY}` } })).json()).toMatchObject({ data: [{ id: 'scripted', object: 'model' }] });
  });

  it('refuses a missing or wrong key (401), bad JSON and bad params (400), unknown paths (404) and methods (405)', async () => {
    for (const key of [null, 'sk-wrong']) {
      const res = await post('/v1/completions', { prompt: 'x' }, key);
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: { code: 'invalid_api_key', type: 'invalid_request_error' } });
    }
    const malformed = await post('/v1/chat/completions', '{"messages": [');
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ error: { type: 'invalid_request_error', message: expect.stringMatching(/not valid JSON/) } });
    const badParam = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], temperature: -1 });
    expect(badParam.status).toBe(400);
    expect(await badParam.json()).toMatchObject({ error: { param: 'temperature' } });
    expect((await post('/v1/embeddings', {})).status).toBe(404);
    const big = await post('/v1/completions', { prompt: 'x'.repeat(1 << 20) });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ error: { code: 'body_too_large' } });
    expect((await fetch(base + '/v1/completions', { headers: { Authorization: `Bearer ${KEY}` } })).status).toBe(405);
  });

  it('answers a CORS preflight without a key, and puts CORS headers on answers', async () => {
    const pre = await fetch(base + '/v1/chat/completions', { method: 'OPTIONS', headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type, x-stainless-os' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('*');
    expect(pre.headers.get('access-control-allow-headers')).toBe('authorization, content-type, x-stainless-os');
    expect(pre.headers.get('access-control-allow-methods')).toContain('POST');
    expect((await post('/v1/completions', { prompt: 'x' }, null)).headers.get('access-control-allow-origin')).toBe('*');
  });

  it('runs a completion on the leader and returns its text and usage', async () => {
    const res = await post('/v1/completions', { prompt: 'The whale', max_tokens: 6, seed: 3 });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { choices: { text: string; finish_reason: string }[]; usage: unknown; object: string };
    expect(body.object).toBe('text_completion');
    expect(body.choices[0]).toMatchObject({ text: expected('The whale', 3, 6), finish_reason: 'length' });
    expect(body.usage).toEqual({ prompt_tokens: 9, completion_tokens: 6, total_tokens: 15 });
  });

  it('streams a chat completion as server-sent events ending with [DONE], usage on request', async () => {
    const res = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, seed: 1, stream: true, stream_options: { include_usage: true } });
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const ev = (await events(res)) as ({ choices: { delta: { content?: string; role?: string }; finish_reason: string | null }[]; usage?: unknown } | '[DONE]')[];
    expect(ev.at(-1)).toBe('[DONE]');
    const chunks = ev.slice(0, -1) as Exclude<(typeof ev)[number], '[DONE]'>[];
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.flatMap((c) => c.choices.map((x) => x.delta.content ?? '')).join('')).toBe(expected('hi', 1, 5));
    expect(chunks.at(-2)?.choices[0].finish_reason).toBe('length');
    expect(chunks.at(-1)?.usage).toEqual({ prompt_tokens: 2, completion_tokens: 5, total_tokens: 7 });
  });

  it('ends at a stop sequence (excluded), and stops the generation at the leader', async () => {
    const full = expected('stop me', 0, 40);
    const stop = full.slice(10, 12);
    const cut = full.indexOf(stop);
    engine.tokenMs = 20;
    const res = await post('/v1/completions', { prompt: 'stop me', max_tokens: 40, seed: 0, stop: [stop] });
    const body = (await res.json()) as { choices: { text: string; finish_reason: string }[] };
    expect(body.choices[0]).toEqual({ index: 0, text: full.slice(0, cut), logprobs: null, finish_reason: 'stop' });
    await expect.poll(() => engine.aborted.includes('stop me')).toBe(true);
  });

  it('runs requests one at a time in arrival order; a full queue answers 429', async () => {
    engine.tokenMs = 100;
    engine.started.length = 0;
    engine.maxRunning = 0;
    const names = ['q1', 'q2', 'q3'];
    const runs: Promise<Response>[] = [];
    for (const n of names) {
      runs.push(post('/v1/completions', { prompt: n, max_tokens: 4, seed: 2 }));
      await expect.poll(() => api.pending()).toBe(runs.length);
    }
    const refused = await post('/v1/completions', { prompt: 'q4', max_tokens: 4 });
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ error: { type: 'rate_limit_error', code: 'queue_full' } });
    const texts = await Promise.all(runs.map(async (r) => ((await (await r).json()) as { choices: { text: string }[] }).choices[0].text));
    expect(texts).toEqual(names.map((n) => expected(n, 2, 4)));
    expect(engine.started).toEqual(names);
    expect(engine.maxRunning).toBe(1);
  });

  it('aborts the generation at the leader when its client goes away; the next request runs', async () => {
    engine.tokenMs = 20;
    const ac = new AbortController();
    const res = await post('/v1/completions', { prompt: 'gone', max_tokens: 500, stream: true }, KEY, ac.signal);
    const reader = res.body!.getReader();
    await reader.read();
    await reader.read();
    ac.abort();
    await expect.poll(() => engine.aborted.includes('gone'), { timeout: 5000 }).toBe(true);
    expect(api.pending()).toBe(0);
    engine.tokenMs = 5;
    const next = (await (await post('/v1/completions', { prompt: 'after', max_tokens: 3, seed: 4 })).json()) as { choices: { text: string }[] };
    expect(next.choices[0].text).toBe(expected('after', 4, 3));
  });

  it('passes a request the engine refuses back as 400 with its reason, streamed or not', async () => {
    for (const stream of [false, true]) {
      const res = await post('/v1/completions', { prompt: 'x'.repeat(100), max_tokens: 3, stream });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { message: expect.stringMatching(/longer than the context/) } });
    }
  });

  it('fails the requests of a leader that leaves (503), and serves again when one joins', async () => {
    engine.tokenMs = 30;
    const pending = post('/v1/completions', { prompt: 'orphan', max_tokens: 200 });
    await expect.poll(() => engine.started.includes('orphan')).toBe(true);
    relay!.close();
    const res = await pending;
    expect(res.status).toBe(503);
    await expect.poll(async () => (await post('/v1/completions', { prompt: 'x' })).status).toBe(503);
    await lead();
    engine.tokenMs = 5;
    expect((await post('/v1/completions', { prompt: 'back', max_tokens: 2 })).status).toBe(200);
  });
});

describe('a leader whose engine fails', () => {
  it('answers 503 with the reason and leaves the room', async () => {
    const res = await post('/v1/completions', { prompt: 'lose the device', max_tokens: 3 });
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: { message: expect.stringMatching(/GPU device was lost/) } });
    await expect(relay!.closed).resolves.toBeInstanceOf(Error);
    await expect.poll(async () => ((await (await post('/v1/completions', { prompt: 'x' })).json()) as { error: { code: string } }).error.code).toBe('no_leader');
    engine.phase = 'ready';
  });
});

describe("the server's own leader", () => {
  it('is the only one that may take the API role when the server set a token', async () => {
    const own = createSignallingServer({ reservedRooms: ['r'], apiToken: 'tok-123' });
    const http = createServer();
    own.attach(http, '/signal');
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/signal`;
    const join = (apiToken?: string): Promise<ApiRelay> =>
      serveApi({ room: 'r', apiToken, signalUrl: url, createWebSocket: (u) => new WebSocket(u) as unknown as WebSocketLike, engine, template: null, modelName: 'm', run: { mode: 'single' } });
    try {
      for (const token of [undefined, 'tok-wrong']) await expect(join(token)).rejects.toMatchObject({ reason: 'wrong-secret' });
      const ok = await join('tok-123');
      expect(own.rooms()[0].peers.map((p) => p.meta.role)).toEqual(['api']);
      // The token travels in the join only: other members never see it.
      expect(JSON.stringify(own.rooms())).not.toContain('tok-123');
      ok.close();
    } finally {
      await own.close();
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    }
  });
});

describe('chat prompts', () => {
  const messages = [
    { role: 'system' as const, content: 'Be brief.' },
    { role: 'user' as const, content: 'The whale' },
  ];

  it("render through the model's chat template, encoded without adding special tokens again", () => {
    const template = chatTemplateOf({ bos_token: '<s>', chat_template: '{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}' });
    expect(chatPrompt(template, messages)).toBe('<s>[system]Be brief.[user]The whale[assistant]');
    const seen: unknown[] = [];
    const spy = { encode: (t: string, o?: unknown) => (seen.push([t, o]), [1]) } as unknown as TextTokenizer;
    apiPromptIds(spy, template, { kind: 'chat', messages, maxTokens: 1, temperature: 0, topP: 1, seed: 0 });
    expect(seen).toEqual([['<s>[system]Be brief.[user]The whale[assistant]', { addSpecialTokens: false }]]);
  });

  it('join the contents line by line for a model without a template', () => {
    expect(chatPrompt(null, messages)).toBe('Be brief.\nThe whale');
  });
});

describe('the headless leader command line', () => {
  it('takes the room, secret and token from the link and the environment, and refuses the unknown', async () => {
    const { parseApiLeaderArgs } = await import('../src/cli/api-leader.ts');
    expect(parseApiLeaderArgs(['--join', 'https://h:8443/?room=R#secret=S', '--insecure'], { SPECPIPE_API_TOKEN: 'tok' })).toEqual({
      origin: 'https://h:8443',
      insecure: true,
      page: { room: 'R', secret: 'S', apiToken: 'tok', modelUrl: '/models/demo-target/', draftUrl: '/models/demo-draft/', placement: 'tab', stages: 2 },
    });
    const mesh = parseApiLeaderArgs(['--join', 'http://h/?room=R', '--placement', 'mesh', '--stages', '4', '--draft-model', 'none', '--secret', 'X'], { SPECPIPE_SECRET: 'env' });
    expect(mesh?.page).toEqual({ room: 'R', secret: 'X', modelUrl: '/models/demo-target/', draftUrl: null, placement: 'mesh', stages: 4 });
    expect(parseApiLeaderArgs(['--join', 'http://h/?room=R'], { SPECPIPE_SECRET: 'env' })?.page.secret).toBe('env');
    expect(parseApiLeaderArgs(['--help'], {})).toBeNull();
    expect(() => parseApiLeaderArgs(['--join', 'http://h/?room=R', '--bogus'], {})).toThrow(/unknown option --bogus \(known: --join/);
    expect(() => parseApiLeaderArgs(['--join', 'http://h/?room=R', '--placement', 'cloud'], {})).toThrow(/--placement must be tab or mesh/);
    expect(() => parseApiLeaderArgs(['--join', 'http://h/?room=R', '--stages', '0'], {})).toThrow(/--stages/);
    expect(() => parseApiLeaderArgs(['--join', 'http://h/'], {})).toThrow(/no \?room=/);
  });
});
