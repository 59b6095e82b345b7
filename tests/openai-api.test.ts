// The OpenAI-compatible API's pure half (src/server/openai-api.ts) and the relay's shared checks
// (apiRequestProblem in src/server/signal-protocol.ts, the leader's messages in signalling.ts).
import { describe, expect, it } from 'vitest';
import { ApiError, chunkBody, errorBody, parseChatBody, parseCompletionBody, responseBody, seedOf, sseEvent, SSE_DONE, StopScanner, usageOf, DEFAULT_MAX_TOKENS } from '../src/server/openai-api.ts';
import { apiRequestProblem, API_MAX_TOKENS } from '../src/server/signal-protocol.ts';
import { parseClientMessage } from '../src/server/signalling.ts';

const refusal = (f: () => unknown): ApiError => {
  try {
    f();
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error('expected an ApiError');
};

describe('parseChatBody / parseCompletionBody', () => {
  it('takes the fields it honours and fills OpenAI defaults', () => {
    const p = parseChatBody({ model: 'm', messages: [{ role: 'developer', content: 'be brief' }, { role: 'user', content: [{ type: 'text', text: 'hi ' }, { type: 'text', text: 'there' }] }] }, 77);
    expect(p).toEqual({
      request: { kind: 'chat', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi there' }], maxTokens: DEFAULT_MAX_TOKENS, temperature: 1, topP: 1, seed: 77 },
      stream: false,
      includeUsage: false,
      stop: [],
    });
    const c = parseCompletionBody({ prompt: ['The whale'], max_tokens: 5, temperature: 0, top_p: 0.5, seed: 9, stop: '\n', stream: true, stream_options: { include_usage: true } }, 1);
    expect(c).toEqual({ request: { kind: 'completion', prompt: 'The whale', maxTokens: 5, temperature: 0, topP: 0.5, seed: 9 }, stream: true, includeUsage: true, stop: ['\n'] });
    expect(parseChatBody({ messages: [{ role: 'user', content: 'x' }], max_completion_tokens: 3, max_tokens: 99 }, 0).request.maxTokens).toBe(3);
  });

  it('maps any integer seed to a u32, equal seeds to equal ones', () => {
    expect(seedOf(5, 0)).toBe(5);
    expect(seedOf(-1, 0)).toBe(0xffffffff);
    expect(seedOf(2 ** 32 + 7, 0)).toBe(7);
    expect(seedOf(undefined, 123)).toBe(123);
    expect(refusal(() => seedOf(1.5, 0)).param).toBe('seed');
  });

  it('refuses malformed requests with status 400 and the offending param', () => {
    const cases: [unknown, string][] = [
      [null, 'body'],
      [[], 'body'],
      [{ messages: [] }, 'messages'],
      [{ messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].role'],
      [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }, 'messages[0].content'],
      [{ messages: [{ role: 'user', content: 'x' }], temperature: 3 }, 'temperature'],
      [{ messages: [{ role: 'user', content: 'x' }], top_p: 0 }, 'top_p'],
      [{ messages: [{ role: 'user', content: 'x' }], max_tokens: 0 }, 'max_tokens'],
      [{ messages: [{ role: 'user', content: 'x' }], max_tokens: API_MAX_TOKENS + 1 }, 'max_tokens'],
      [{ messages: [{ role: 'user', content: 'x' }], max_tokens: 2.5 }, 'max_tokens'],
      [{ messages: [{ role: 'user', content: 'x' }], n: 2 }, 'n'],
      [{ messages: [{ role: 'user', content: 'x' }], stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
      [{ messages: [{ role: 'user', content: 'x' }], stop: [''] }, 'stop'],
      [{ messages: [{ role: 'user', content: 'x' }], stream: 'yes' }, 'stream'],
      [{ messages: [{ role: 'user', content: 'x' }], logprobs: true }, 'logprobs'],
      [{ messages: [{ role: 'user', content: 'x' }], model: 3 }, 'model'],
    ];
    for (const [body, param] of cases) {
      const e = refusal(() => parseChatBody(body, 0));
      expect([e.status, e.type, e.param], JSON.stringify(body)).toEqual([400, 'invalid_request_error', param]);
    }
    expect(refusal(() => parseCompletionBody({ prompt: [1, 2, 3] }, 0)).param).toBe('prompt');
    expect(refusal(() => parseCompletionBody({ prompt: ['a', 'b'] }, 0)).param).toBe('prompt');
  });

  it('produces requests the leader accepts, and the leader refuses what the server would', () => {
    expect(apiRequestProblem(parseChatBody({ messages: [{ role: 'user', content: 'x' }] }, 1).request)).toBeNull();
    expect(apiRequestProblem(parseCompletionBody({ prompt: 'x', temperature: 0 }, 1).request)).toBeNull();
    const good = { kind: 'completion', prompt: 'x', maxTokens: 4, temperature: 0, topP: 1, seed: 0 };
    expect(apiRequestProblem({ ...good, maxTokens: 0 })).toMatch(/maxTokens/);
    expect(apiRequestProblem({ ...good, seed: -1 })).toMatch(/seed/);
    expect(apiRequestProblem({ ...good, topP: 2 })).toMatch(/topP/);
    expect(apiRequestProblem({ ...good, kind: 'chat' })).toMatch(/messages/);
    expect(apiRequestProblem({ ...good, kind: 'chat', messages: [{ role: 'root', content: 'x' }] })).toMatch(/role/);
    expect(apiRequestProblem({ ...good, kind: 'embed' })).toMatch(/kind/);
    expect(apiRequestProblem('x')).toMatch(/object/);
  });
});

describe('StopScanner', () => {
  it('passes text through when there are no stop sequences', () => {
    const s = new StopScanner([]);
    expect(s.push('abc') + s.push('def') + s.flush()).toBe('abcdef');
  });

  it('cuts before a stop sequence split across pieces and holds back only possible starts', () => {
    const s = new StopScanner(['\n\n', 'END']);
    expect(s.push('one E')).toBe('one ');
    expect(s.push('N')).toBe('');
    expect(s.push('X two\n')).toBe('ENX two');
    expect(s.push('\nthree')).toBe('');
    expect(s.stopped).toBe(true);
    expect(s.push('more')).toBe('');
    expect(s.flush()).toBe('');
  });

  it('takes the earliest of several stop sequences and releases a held prefix at the end', () => {
    const s = new StopScanner(['cabin', ', and']);
    expect(s.push('the whale, and the cabin')).toBe('the whale');
    const t = new StopScanner(['cabin']);
    expect(t.push('the cab')).toBe('the ');
    expect(t.flush()).toBe('cab');
  });
});

describe('response bodies', () => {
  const chat = { kind: 'chat' as const, id: 'chatcmpl-1', created: 5, model: 'm' };
  const comp = { kind: 'completion' as const, id: 'cmpl-1', created: 5, model: 'm' };

  it('has OpenAI chunk shapes for chat and completions', () => {
    expect(chunkBody(chat, { role: true, text: '' })).toEqual({ id: 'chatcmpl-1', created: 5, model: 'm', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
    expect(chunkBody(chat, { finish: 'length' }).choices).toEqual([{ index: 0, delta: {}, logprobs: null, finish_reason: 'length' }]);
    expect(chunkBody(comp, { text: 'x' })).toEqual({ id: 'cmpl-1', created: 5, model: 'm', object: 'text_completion', choices: [{ index: 0, text: 'x', logprobs: null, finish_reason: null }] });
    expect(chunkBody(chat, { usage: usageOf(2, 3) })).toMatchObject({ choices: [], usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 } });
  });

  it('has OpenAI whole-response and error shapes', () => {
    expect(responseBody(chat, 'hi', 'stop', usageOf(1, 1))).toEqual({
      id: 'chatcmpl-1', object: 'chat.completion', created: 5, model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
    });
    expect(responseBody(comp, 'hi', 'length', usageOf(1, 1)).choices).toEqual([{ index: 0, text: 'hi', logprobs: null, finish_reason: 'length' }]);
    expect(errorBody(new ApiError(401, 'no', 'invalid_request_error', null, 'invalid_api_key'))).toEqual({ error: { message: 'no', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    expect(sseEvent({ a: 1 })).toBe('data: {"a":1}\n\n');
    expect(SSE_DONE).toBe('data: [DONE]\n\n');
  });
});

describe("the leader's messages, as the signalling service checks them", () => {
  it('accepts well-formed answers and refuses malformed ones', () => {
    expect(parseClientMessage(JSON.stringify({ type: 'api-chunk', id: 'abc', text: 'x', tokens: 1, extra: 1 }))).toEqual({ type: 'api-chunk', id: 'abc', text: 'x', tokens: 1 });
    expect(parseClientMessage(JSON.stringify({ type: 'api-done', id: 'abc', finish: 'length', promptTokens: 2, completionTokens: 3 }))).toMatchObject({ finish: 'length' });
    expect(parseClientMessage(JSON.stringify({ type: 'api-start', id: 'abc', promptTokens: 2 }))).toEqual({ type: 'api-start', id: 'abc', promptTokens: 2 });
    expect(parseClientMessage(JSON.stringify({ type: 'api-error', id: 'abc', status: 400, message: 'too long' }))).toMatchObject({ status: 400 });
    for (const bad of [
      { type: 'api-chunk', id: 'a b', text: 'x', tokens: 1 },
      { type: 'api-chunk', id: 'a', text: 3, tokens: 1 },
      { type: 'api-chunk', id: 'a', text: 'x', tokens: -1 },
      { type: 'api-done', id: 'a', finish: 'eos', promptTokens: 1, completionTokens: 1 },
      { type: 'api-error', id: 'a', status: 200, message: 'x' },
      { type: 'api-start', id: 'a' },
    ]) {
      expect(() => parseClientMessage(JSON.stringify(bad)), JSON.stringify(bad)).toThrow();
    }
  });
});
