// Model loading in the browser: Range reads of exactly a stage's tensors, progress, the IndexedDB
// cache, sharded checkpoints, servers that ignore Range, and user-picked files.
import { test, expect, type Page, type Request } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { openHarness, callInPage } from './harness.ts';
import { parseSafetensors, type TensorInfo } from '../src/model/safetensors.ts';
import type { StageReport, StageRequest } from './pages/loader.ts';

const PAGE = '/e2e/pages/loader.ts';
const LLAMA = '/fixtures/tiny-llama/';
const BF16 = '/fixtures/tiny-bf16/';

interface SeenRequest {
  method: string;
  path: string;
  range: [number, number] | null; // [start, end) of a Range request
}

/** Records every request the page makes to fixture files. */
function recordRequests(page: Page): SeenRequest[] {
  const seen: SeenRequest[] = [];
  page.on('request', (r: Request) => {
    const url = new URL(r.url());
    if (!url.pathname.startsWith('/fixtures/') && !url.pathname.startsWith('/norange/')) return;
    const m = /^bytes=(\d+)-(\d+)$/.exec(r.headers()['range'] ?? '');
    seen.push({ method: r.method(), path: url.pathname, range: m ? [Number(m[1]), Number(m[2]) + 1] : null });
  });
  return seen;
}

function headerOf(file: string): Map<string, TensorInfo> {
  return parseSafetensors(file, new Uint8Array(readFileSync(`public${file}`))).tensors;
}

const loadStage = (page: Page, req: StageRequest): Promise<StageReport> => callInPage<StageReport>(page, PAGE, 'loadStage', req);

test.beforeEach(async ({ page }) => {
  await openHarness(page);
  await callInPage(page, PAGE, 'clearCache');
});

test('a middle stage reads only its own layer bytes, reports progress, then loads from IndexedDB with no weight requests', async ({ page }) => {
  const seen = recordRequests(page);
  const file = `${LLAMA}model.safetensors`;
  const tensors = headerOf(file);
  const layer1 = [...tensors.values()].filter((t) => t.name.startsWith('model.layers.1.'));
  const headerEnd = Math.min(...[...tensors.values()].map((t) => t.start));

  const first = await loadStage(page, { url: LLAMA, layers: [1, 2], embed: false, head: false });
  expect(first.names.sort()).toEqual(layer1.map((t) => t.name).sort());
  expect(first.formats).toEqual(['f32']);
  expect(first.shapes['model.layers.1.self_attn.k_proj.weight']).toEqual([32, 64]);
  const total = layer1.reduce((s, t) => s + t.end - t.start, 0);
  expect(first.progress.first).toEqual([0, total]);
  expect(first.progress.last).toEqual([total, total]);
  expect(first.progress.monotonic).toBe(true);

  // Requests to the weight file: the 8-byte prefix, the header, then only layer 1's bytes.
  const weightReqs = seen.filter((r) => r.path === file && r.method === 'GET');
  expect(weightReqs.every((r) => r.range !== null)).toBe(true);
  const ranges = weightReqs.map((r) => r.range as [number, number]);
  expect(ranges[0]).toEqual([0, 8]);
  expect(ranges[1]).toEqual([8, headerEnd]);
  const dataRanges = ranges.slice(2);
  const requested = new Set<number>();
  for (const [s, e] of dataRanges) for (let b = s; b < e; b++) requested.add(b);
  const needed = new Set<number>();
  for (const t of layer1) for (let b = t.start; b < t.end; b++) needed.add(b);
  expect(requested.size).toBe(needed.size);
  expect([...requested].every((b) => needed.has(b))).toBe(true);
  const byteCount = dataRanges.reduce((s, [a, b]) => s + b - a, 0);
  expect(byteCount).toBe(total); // nothing read twice
  console.log(`layer 1 of tiny-llama: ${dataRanges.length} data request(s), ${byteCount} bytes, ${first.ms.toFixed(0)} ms`);

  // Second load: everything from IndexedDB; the weight file gets no GET at all (HEAD only).
  seen.length = 0;
  const second = await loadStage(page, { url: LLAMA, layers: [1, 2], embed: false, head: false });
  expect(second.checksums).toEqual(first.checksums);
  expect(second.progress.last).toEqual([total, total]);
  expect(seen.filter((r) => r.path === file && r.method === 'GET')).toEqual([]);
  console.log(`second load: ${seen.length} request(s) (${seen.map((r) => `${r.method} ${r.path}`).join(', ')}), ${second.ms.toFixed(0)} ms`);

  // With the cache off, the bytes are fetched again.
  seen.length = 0;
  const third = await loadStage(page, { url: LLAMA, layers: [1, 2], embed: false, head: false, cache: false });
  expect(third.checksums).toEqual(first.checksums);
  expect(seen.filter((r) => r.path === file && r.method === 'GET').length).toBeGreaterThan(2);
});

test('quantize on load: projections become Q4_0 blocks, cached quantized under a key with the format; a reload reads no weight bytes', async ({ page }) => {
  const seen = recordRequests(page);
  const file = `${LLAMA}model.safetensors`;
  const gets = () => seen.filter((r) => r.path === file && r.method === 'GET').length;
  const req: StageRequest = { url: LLAMA, layers: [1, 2], embed: false, head: false, quant: 'q4_0' };
  const first = await loadStage(page, req);
  expect(first.formats.sort()).toEqual(['f32', 'q4_0']);
  // tiny-llama's intermediate size is 172: down_proj cannot be cut into blocks of 32 and stays f32.
  expect(first.warnings.join('\n')).toContain('Q4_0: mlp.down_proj.weight (1 layer) has input size 172, not a multiple of 32; it stays f32');
  const cached = await callInPage<string[]>(page, PAGE, 'cachedKeys');
  const q4 = cached.filter((k) => k.endsWith('|q4_0')).map((k) => k.split('|').at(-2)).sort();
  expect(q4).toEqual(['mlp.gate_proj', 'mlp.up_proj', 'self_attn.k_proj', 'self_attn.o_proj', 'self_attn.q_proj', 'self_attn.v_proj'].map((p) => `model.layers.1.${p}.weight`));
  // The raw bytes of a quantized tensor are not kept (they would take 3.5x the space).
  expect(cached.some((k) => k.endsWith('|model.layers.1.mlp.up_proj.weight'))).toBe(false);

  seen.length = 0;
  const second = await loadStage(page, req);
  expect(second.checksums).toEqual(first.checksums);
  expect(second.formats.sort()).toEqual(['f32', 'q4_0']);
  expect(second.progress.last).toEqual(first.progress.last);
  expect(gets()).toBe(0); // every tensor from IndexedDB, the Q4_0 blocks as stored: nothing to quantize
  console.log(`q4_0 reload: ${seen.length} request(s), ${second.ms.toFixed(0)} ms (first load ${first.ms.toFixed(0)} ms)`);

  // Another format is another entry: Q8_0 fetches the projections again.
  seen.length = 0;
  const q8 = await loadStage(page, { ...req, quant: 'q8_0' });
  expect(q8.formats.sort()).toEqual(['f32', 'q8_0']);
  expect(gets()).toBeGreaterThan(0);
});

test('corrupt cache entries are refetched', async ({ page }) => {
  const seen = recordRequests(page);
  const first = await loadStage(page, { url: LLAMA, layers: [0, 1], embed: true, head: false });
  // Truncate every cached tensor in place.
  expect(await callInPage<number>(page, PAGE, 'truncateCachedTensors')).toBeGreaterThan(0);
  seen.length = 0;
  const second = await loadStage(page, { url: LLAMA, layers: [0, 1], embed: true, head: false });
  expect(second.checksums).toEqual(first.checksums);
  expect(second.warnings.join('\n')).toMatch(/corrupt entr/);
  expect(seen.filter((r) => r.method === 'GET' && r.range !== null).length).toBeGreaterThan(0);
});

test('a cache that cannot be written (quota) never breaks loading', async ({ page }) => {
  const ok = await loadStage(page, { url: LLAMA, layers: [2, 3], embed: false, head: true, cache: false });
  const r = await callInPage<StageReport>(page, PAGE, 'loadStageWithFailingCacheWrites', { url: LLAMA, layers: [2, 3], embed: false, head: true });
  expect(r.checksums).toEqual(ok.checksums);
  expect(r.warnings.join('\n')).toMatch(/weight cache write failed .*quota exceeded/);
});

test('a sharded BF16 checkpoint loads through model.safetensors.index.json and matches the PyTorch reference', async ({ page }) => {
  const seen = recordRequests(page);
  // Last stage only: layer 2 and the head live in shard 2, so shard 1 is never read past its header.
  const last = await loadStage(page, { url: BF16, layers: [2, 3], embed: false, head: true });
  expect(last.names).toContain('lm_head.weight');
  expect(last.shapes['model.layers.2.self_attn.q_proj.weight']).toEqual([96, 64]); // head_dim 24 x 4 heads
  expect(last.formats).toEqual(['f32']);
  const shard1 = seen.filter((r) => r.path.endsWith('model-00001-of-00002.safetensors') && r.method === 'GET');
  const shard1Header = headerOf(`${BF16}model-00001-of-00002.safetensors`);
  const shard1DataStart = Math.min(...[...shard1Header.values()].map((t) => t.start));
  expect(shard1.every((r) => r.range !== null && r.range[1] <= shard1DataStart)).toBe(true);

  const check = await callInPage<{ tokens: number[]; want: number[]; maxLogitDiff: number }>(page, PAGE, 'checkAgainstReference', { url: BF16, steps: 8 });
  expect(check.tokens).toEqual(check.want);
  expect(check.maxLogitDiff).toBeLessThan(2e-3);
});

test('F16 weights (tiny-qwen2, tied, biases) load as f16 and match the reference', async ({ page }) => {
  const r = await loadStage(page, { url: '/fixtures/tiny-qwen2/', layers: [1, 2], embed: false, head: true });
  expect(r.formats).toEqual(['f16']);
  expect(r.names).toEqual(expect.arrayContaining(['model.embed_tokens.weight', 'model.norm.weight', 'model.layers.1.self_attn.q_proj.bias']));
  const check = await callInPage<{ tokens: number[]; want: number[]; maxLogitDiff: number }>(page, PAGE, 'checkAgainstReference', { url: '/fixtures/tiny-qwen2/', steps: 8 });
  expect(check.tokens).toEqual(check.want);
});

test('a server that ignores Range: the file is fetched once, sliced, with a warning', async ({ page }) => {
  const seen = recordRequests(page);
  await page.route('**/norange/**', async (route) => {
    const url = route.request().url().replace('/norange/', '/fixtures/');
    const headers = { ...route.request().headers() };
    delete headers['range'];
    const response = await route.fetch({ url, headers });
    await route.fulfill({ response, status: response.status() === 206 ? 200 : response.status() });
  });
  const viaFixture = await loadStage(page, { url: LLAMA, layers: [0, 3], embed: true, head: true, cache: false });
  const r = await loadStage(page, { url: '/norange/tiny-llama/', layers: [0, 3], embed: true, head: true, cache: false });
  expect(r.checksums).toEqual(viaFixture.checksums);
  expect(r.warnings.join('\n')).toMatch(/ignored the Range header/);
  const gets = seen.filter((x) => x.path === '/norange/tiny-llama/model.safetensors' && x.method === 'GET');
  expect(gets.length).toBe(1);
});

test('user-picked files (File objects) load like a URL', async ({ page }) => {
  const fromUrl = await loadStage(page, { url: BF16, layers: [0, 3], embed: true, head: true, cache: false });
  const fromFiles = await loadStage(page, {
    url: BF16,
    layers: [0, 3],
    embed: true,
    head: true,
    asFiles: ['config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'],
  });
  expect(fromFiles.checksums).toEqual(fromUrl.checksums);
});
