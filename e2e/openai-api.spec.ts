// The OpenAI-compatible API end to end, with the official `openai` client: `npm start -- --leader
// headless` (the production build, served by src/server/main.ts, which starts a headless Chromium
// leader that loads the bundled target + draft with two stages in its tab and runs specpipe) answers
// chat and completions, streamed and whole; greedy text is the PyTorch reference's; 8 clients at
// once each get exactly the text their request gets alone (greedy and seeded sampling); a client
// that aborts mid-stream stops its generation at the leader; wrong key 401, malformed body 400, no
// leader 503; unknown flags are refused.
import { test, expect } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'vite';
import OpenAI from 'openai';
import { createTokenizer } from '../src/model/tokenizer.ts';

const KEY = 'sk-e2e-key';
const MODEL_DIR = 'public/models/demo-target';

interface Host {
  child: ChildProcess;
  base: string;
  output: () => string;
}
const hosts: Host[] = [];
let dist = '';

/** src/server/main.ts in its own process group (the headless leader is its child: both are killed at the end). */
function startServer(args: string[]): Host {
  const port = 21000 + Math.floor(Math.random() * 20000);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server/main.ts', '--http', '--host', '127.0.0.1', '--port', String(port), '--dist', dist, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout?.on('data', (d) => (out += String(d)));
  child.stderr?.on('data', (d) => (out += String(d)));
  const h = { child, base: `http://127.0.0.1:${port}`, output: () => out };
  hosts.push(h);
  return h;
}

const client = (h: Host, apiKey = KEY): OpenAI => new OpenAI({ baseURL: `${h.base}/v1`, apiKey, maxRetries: 0, timeout: 240_000 });

let api: Host;
let openai: OpenAI;

test.describe.configure({ mode: 'serial' });

test.beforeAll(async () => {
  test.setTimeout(240_000);
  dist = mkdtempSync(join(tmpdir(), 'specpipe-api-dist-'));
  await build({ configFile: 'vite.config.ts', logLevel: 'error', build: { outDir: dist, emptyOutDir: true } });
  api = startServer(['--leader', 'headless', '--stages', '2', '--api-key', KEY]);
  openai = client(api);
  await expect
    .poll(async () => (await openai.models.list().catch(() => ({ data: [] }))).data.map((m) => m.id), { timeout: 200_000, intervals: [1000] })
    .toEqual(['demo-target']);
});

test.afterAll(() => {
  for (const h of hosts) {
    try {
      process.kill(-h.child.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
  }
});

type Req = { kind: 'chat' | 'completion'; prompt: string; stream: boolean; temperature: number; top_p?: number; seed?: number; max_tokens: number };

/** One request through the client; streamed text is the concatenation of its deltas. */
async function run(r: Req, c = openai): Promise<{ text: string; finish: string | null }> {
  const common = { model: 'demo-target', max_tokens: r.max_tokens, temperature: r.temperature, top_p: r.top_p, seed: r.seed };
  if (r.kind === 'chat') {
    const messages = [{ role: 'user' as const, content: r.prompt }];
    if (!r.stream) {
      const res = await c.chat.completions.create({ ...common, messages });
      return { text: res.choices[0].message.content ?? '', finish: res.choices[0].finish_reason };
    }
    let text = '';
    let finish: string | null = null;
    for await (const ch of await c.chat.completions.create({ ...common, messages, stream: true })) {
      text += ch.choices[0]?.delta.content ?? '';
      finish = ch.choices[0]?.finish_reason ?? finish;
    }
    return { text, finish };
  }
  if (!r.stream) {
    const res = await c.completions.create({ ...common, prompt: r.prompt });
    return { text: res.choices[0].text, finish: res.choices[0].finish_reason };
  }
  let text = '';
  let finish: string | null = null;
  for await (const ch of await c.completions.create({ ...common, prompt: r.prompt, stream: true })) {
    text += ch.choices[0]?.text ?? '';
    finish = ch.choices[0]?.finish_reason ?? finish;
  }
  return { text, finish };
}

/** The PyTorch reference's greedy continuations of the bundled target (public/models/demo-target/reference.json), decoded. */
const reference = JSON.parse(readFileSync(join(MODEL_DIR, 'reference.json'), 'utf8')) as { cases: { prompt: string; promptIds: number[]; greedyTokens: number[] }[] };
const tokenizer = createTokenizer(JSON.parse(readFileSync(join(MODEL_DIR, 'tokenizer.json'), 'utf8')), JSON.parse(readFileSync(join(MODEL_DIR, 'tokenizer_config.json'), 'utf8')));
const referenceText = (c: (typeof reference.cases)[number], n: number): string => tokenizer.decode(c.greedyTokens.slice(0, n));

test('greedy completions are the PyTorch reference continuation, with usage', async () => {
  for (const c of reference.cases) {
    const res = await openai.completions.create({ model: 'demo-target', prompt: c.prompt, max_tokens: 10, temperature: 0 });
    expect(res.choices[0].text, c.prompt).toBe(referenceText(c, 10));
    expect(res.choices[0].finish_reason).toBe('length');
    expect(res.usage).toEqual({ prompt_tokens: c.promptIds.length, completion_tokens: 10, total_tokens: c.promptIds.length + 10 });
  }
});

test('chat and completions, streamed and whole, give the same text; stop sequences end it', async () => {
  const seeded = { prompt: 'The whale', temperature: 0.8, top_p: 0.95, seed: 7, max_tokens: 10 };
  const whole = await run({ kind: 'chat', stream: false, ...seeded });
  expect(whole.text.length).toBeGreaterThan(0);
  expect(whole.finish).toBe('length');
  // The bundled model has no chat template: a one-message chat is its content as the prompt.
  for (const r of [{ kind: 'chat', stream: true }, { kind: 'completion', stream: false }, { kind: 'completion', stream: true }] as const) {
    expect(await run({ ...r, ...seeded }), JSON.stringify(r)).toEqual(whole);
  }
  const stop = whole.text.slice(4, 7);
  const stopped = await openai.completions.create({ model: 'demo-target', prompt: 'The whale', max_tokens: 10, temperature: 0.8, top_p: 0.95, seed: 7, stop: [stop] });
  expect(stopped.choices[0]).toMatchObject({ text: whole.text.slice(0, whole.text.indexOf(stop)), finish_reason: 'stop' });
});

test('8 concurrent clients each get exactly the text their request gets alone (greedy and seeded)', async () => {
  test.setTimeout(300_000);
  const prompts = ['The whale', 'In the beginning', 'Mr. Speaker,', 'Call me'];
  const reqs: Req[] = prompts.flatMap((prompt, i) => [
    { kind: i % 2 ? 'chat' : 'completion', prompt, stream: i < 2, temperature: 0, max_tokens: 8 },
    { kind: i % 2 ? 'completion' : 'chat', prompt, stream: i >= 2, temperature: 0.8, top_p: 0.95, seed: 100 + i, max_tokens: 8 },
  ]);
  const alone: { text: string; finish: string | null }[] = [];
  for (const r of reqs) alone.push(await run(r));
  const together = await Promise.all(reqs.map((r) => run(r)));
  expect(together).toEqual(alone);
  // Different seeds draw different numbers: the seeded texts are not all one text.
  expect(new Set(alone.filter((_, i) => i % 2 === 1).map((a) => a.text)).size).toBeGreaterThan(1);
});

test('a client that aborts mid-stream stops its generation at the leader; the next requests still work', async () => {
  const before = api.output().split('(abort)').length;
  const stream = await openai.completions.create({ model: 'demo-target', prompt: 'The whale', max_tokens: 400, temperature: 0, stream: true });
  let chunks = 0;
  for await (const _ of stream) if (++chunks === 3) break; // leaving the loop aborts the request
  await expect.poll(() => api.output().split('(abort)').length, { timeout: 30_000 }).toBe(before + 1);
  const after = await run({ kind: 'completion', prompt: 'In the beginning', stream: true, temperature: 0, max_tokens: 6 });
  expect(after.finish).toBe('length');
  expect(after).toEqual(await run({ kind: 'completion', prompt: 'In the beginning', stream: false, temperature: 0, max_tokens: 6 }));
});

test('a wrong key gets 401, a malformed body 400, a bad parameter 400', async () => {
  const wrong = await client(api, 'sk-wrong').completions.create({ model: 'demo-target', prompt: 'x', max_tokens: 1 }).catch((e: unknown) => e);
  expect(wrong).toBeInstanceOf(OpenAI.AuthenticationError);
  expect((wrong as InstanceType<typeof OpenAI.AuthenticationError>).status).toBe(401);
  const malformed = await fetch(`${api.base}/v1/chat/completions`, { method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' }, body: '{"model": "demo-target", "messages": [' });
  expect(malformed.status).toBe(400);
  expect(await malformed.json()).toMatchObject({ error: { type: 'invalid_request_error', message: expect.any(String) } });
  const bad = await openai.chat.completions.create({ model: 'demo-target', messages: [{ role: 'user', content: 'x' }], temperature: 5 }).catch((e: unknown) => e);
  expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
  expect((bad as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('temperature');
});

test('a server with no leader in its room answers 503; unknown flags are refused with the list', async () => {
  const bare = startServer([]);
  await expect.poll(() => bare.output(), { timeout: 30_000 }).toContain('OpenAI-compatible API');
  const e = await client(bare).chat.completions.create({ model: 'demo-target', messages: [{ role: 'user', content: 'x' }] }).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(OpenAI.APIError);
  expect((e as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
  const refused = startServer(['--leader', 'headless', '--bogus', '1']);
  await expect.poll(() => refused.child.exitCode, { timeout: 30_000 }).toBe(1);
  expect(refused.output()).toMatch(/unknown option --bogus \(known: .*--api-key --leader --placement --stages --model --draft-model/);
});

test('with --placement mesh the headless leader waits for stage tabs, then serves through their ring', async ({ browser }) => {
  test.setTimeout(300_000);
  const room = `api-mesh-${Date.now().toString(36)}`;
  const mesh = startServer(['--leader', 'headless', '--placement', 'mesh', '--stages', '2', '--room', room, '--api-key', KEY]);
  await expect.poll(() => mesh.output(), { timeout: 60_000 }).toContain('waiting for 2 stage tab(s)');
  const waiting = await client(mesh).completions.create({ model: 'demo-target', prompt: 'x', max_tokens: 1 }).catch((e: unknown) => e);
  expect((waiting as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
  const stages = await Promise.all([0, 1].map(() => browser.newPage()));
  try {
    for (const p of stages) await p.goto(`${mesh.base}/?room=${room}&stage`);
    await expect
      .poll(async () => (await client(mesh).models.list().catch(() => ({ data: [] }))).data.map((m) => m.id), { timeout: 200_000, intervals: [1000] })
      .toEqual(['demo-target']);
    expect(mesh.output()).toMatch(/specpipe, 2 stage\(s\) in stage tabs\/hosts/);
    const c = reference.cases[0];
    const res = await client(mesh).chat.completions.create({ model: 'demo-target', messages: [{ role: 'user', content: c.prompt }], max_tokens: 8, temperature: 0 });
    expect(res.choices[0].message.content).toBe(referenceText(c, 8));
  } finally {
    for (const p of stages) await p.close();
  }
});
