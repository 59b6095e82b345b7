// The CPU backend (src/cpu: C kernels in WebAssembly SIMD) in headless Chromium: one tab on it gives
// the WebGPU tab's tokens (greedy and seeded), and pipelines that mix a WebGPU stage and a WASM stage
// stay lossless in pp and specpipe: in one tab (--backend webgpu,wasm) and in a ring of stage tabs
// over WebRTC (one stage tab on each backend); 2 threads give bitwise one thread's logits; a Node stage host on the CPU backend (`npm run stage --
// --backend wasm`, no GPU device opened) serves next to a WebGPU stage tab with the same tokens.
import { test, expect, chromium, type Browser, type Page } from '@playwright/test';
import { findChromium, chromiumArgs } from '../src/cli/browser.ts';
import { openHarness, callInPage } from './harness.ts';
import type { Outcome } from './pages/ring.ts';
import type { MeshRunReport } from '../src/app/mesh-types.ts';
import type { GenerationReport, GenerationRequest } from '../src/app/engine.ts';
import type { StageStatus } from '../src/app/stage-node.ts';
import type { LocalRunRequest } from '../src/headless/local-run.ts';
import { RING_PAGE as PAGE, GREEDY, DEMO, DRAFT } from './mesh-fixtures.ts';
import { spawnStageHost } from '../src/cli/stage-processes.ts';

const SEEDED = { temperature: 0.8, topK: 0, topP: 0.95, seed: 1 };
const PROMPT = 'In the beginning';
const N = 24;

let browsers: Browser[] = [];
test.beforeAll(async () => {
  for (let i = 0; i < 2; i++) browsers.push(await chromium.launch({ executablePath: findChromium(), args: chromiumArgs }));
});
test.afterAll(async () => {
  for (const b of browsers) await b.close();
  browsers = [];
});

async function tab(browser: Browser, baseURL: string): Promise<Page> {
  const page = await (await browser.newContext({ baseURL })).newPage();
  await openHarness(page);
  return page;
}

const local = (p: Page, req: Omit<LocalRunRequest, 'modelUrl' | 'prompt' | 'maxNewTokens'>): Promise<GenerationReport> =>
  callInPage<GenerationReport>(p, PAGE, 'single', { modelUrl: DEMO, prompt: PROMPT, maxNewTokens: N, ...req } satisfies LocalRunRequest);

test('one tab on the CPU backend gives the WebGPU tab\'s tokens; webgpu + wasm stages in one tab are lossless in pp and specpipe', async ({ baseURL }) => {
  test.setTimeout(600_000);
  const p = await tab(browsers[0], baseURL!);
  for (const sampling of [GREEDY, SEEDED]) {
    const gpu = await local(p, { mode: 'single', sampling });
    const wasm = await local(p, { mode: 'single', sampling, backend: 'wasm' });
    console.log(`${sampling.temperature ? 'seeded' : 'greedy'}: webgpu tbt p50 ${gpu.timings.tbtP50Ms?.toFixed(1)} ms, wasm ${wasm.timings.tbtP50Ms?.toFixed(1)} ms; "${wasm.text}"`);
    expect(gpu.tokens).toHaveLength(N);
    expect(wasm.tokens).toEqual(gpu.tokens);
    expect(wasm.adapter).toMatch(/^wasm: WebAssembly SIMD128/);
    for (const mode of ['pp', 'specpipe'] as const) {
      const mixed = await local(p, { mode, sampling, stages: 2, backend: ['webgpu', 'wasm'], draftUrl: DRAFT, draft: 'model', width: 2 });
      expect(mixed.tokens, `${mode}, ${sampling.temperature ? 'seeded' : 'greedy'}`).toEqual(gpu.tokens);
      expect(mixed.adapter).toMatch(/^stages on webgpu, wasm/);
    }
  }
  // Threads (this page is cross-origin isolated: the dev server sends COOP + COEP): each output is
  // computed as with one thread, so the logits are bitwise those of one thread.
  const one = await local(p, { mode: 'single', sampling: GREEDY, backend: 'wasm', dumpLogits: 4 });
  const two = await local(p, { mode: 'single', sampling: GREEDY, backend: 'wasm', wasmThreads: 2, dumpLogits: 4 });
  expect(two.adapter).toMatch(/^wasm: WebAssembly SIMD128 on the CPU, 2 threads/);
  expect(two.tokens).toEqual(one.tokens);
  expect(two.logits).toHaveLength(4);
  expect(two.logits).toEqual(one.logits);
  console.log(`wasm tbt p50: 1 thread ${one.timings.tbtP50Ms?.toFixed(1)} ms, 2 threads ${two.timings.tbtP50Ms?.toFixed(1)} ms`);
  // auto measures both backends and says so.
  const auto = await local(p, { mode: 'single', sampling: GREEDY, backend: 'auto' });
  expect(auto.adapter).toMatch(/\(backend auto: wasm [\d.]+ GB\/s, webgpu [\d.]+ GB\/s matvec\)$/);
  console.log(`auto: ${auto.adapter}`);
});

test('a ring of a WebGPU stage tab and a WASM stage tab is lossless in pp and specpipe (greedy and seeded)', async ({ baseURL }) => {
  test.setTimeout(600_000);
  const ref = await tab(browsers[0], baseURL!);
  const want = new Map<string, number[]>();
  for (const sampling of [GREEDY, SEEDED]) want.set(JSON.stringify(sampling), (await local(ref, { mode: 'single', sampling })).tokens);
  await ref.close();

  const room = `wasm-ring-${Date.now().toString(36)}`;
  const leader = await tab(browsers[0], baseURL!);
  await callInPage(leader, PAGE, 'leaderStart', { room, stages: 2, modelUrl: DEMO, draftUrl: DRAFT, name: 'leader' });
  const stages = [await tab(browsers[1], baseURL!), await tab(browsers[0], baseURL!)];
  const backends = ['webgpu', 'wasm'] as const;
  const joined = await Promise.all(stages.map((s, i) => callInPage<{ id: string } | { error: string }>(s, PAGE, 'stageStart', { room, name: `s${i + 1}-${backends[i]}`, backend: backends[i] })));
  for (const j of joined) expect(j).toHaveProperty('id');
  expect(await callInPage<Outcome>(leader, PAGE, 'leaderReady')).toEqual({ ok: true });
  const status = await Promise.all(stages.map((s) => callInPage<StageStatus | null>(s, PAGE, 'stageStatusNow')));
  expect(status[0]!.device).not.toMatch(/^wasm/);
  expect(status[1]!.device).toMatch(/^wasm: WebAssembly SIMD128/);
  for (const sampling of [GREEDY, SEEDED]) {
    for (const mode of ['pp', 'specpipe'] as const) {
      const r = await callInPage<MeshRunReport>(leader, PAGE, 'leaderGenerate', { prompt: PROMPT, maxNewTokens: N, sampling, mode, draft: 'model', width: 2 } satisfies GenerationRequest);
      console.log(`ring webgpu -> wasm, ${mode}, ${sampling.temperature ? 'seeded' : 'greedy'}: tbt p50 ${r.timings.tbtP50Ms?.toFixed(1)} ms, hit rate ${r.metrics.hitRate?.toFixed(2) ?? '-'}`);
      expect(r.tokens, `${mode} ${JSON.stringify(sampling)}`).toEqual(want.get(JSON.stringify(sampling)));
      expect(r.recoveries).toBe(0);
    }
  }
  for (const p of [leader, ...stages]) await p.close();
});

test('a Node stage host on the CPU backend (--backend wasm) next to a WebGPU stage tab gives the single tab\'s tokens', async ({ baseURL }) => {
  test.setTimeout(600_000);
  const ref = await tab(browsers[0], baseURL!);
  const want = new Map<string, number[]>();
  for (const sampling of [GREEDY, SEEDED]) want.set(JSON.stringify(sampling), (await local(ref, { mode: 'single', sampling })).tokens);
  await ref.close();

  const room = `wasm-host-${Date.now().toString(36)}`;
  const host = spawnStageHost({ join: `${baseURL}/?room=${room}`, name: 'cpu-host', extra: ['--backend', 'wasm'] });
  try {
    await expect.poll(() => host.lines.join('\n'), { timeout: 120_000 }).toMatch(/joined room "[^"]+" as \S+ "cpu-host": device wasm: WebAssembly SIMD128 on the CPU, 1 thread, [\d.]+ GB\/s matvec/);
    const leader = await tab(browsers[0], baseURL!);
    await callInPage(leader, PAGE, 'leaderStart', { room, stages: 2, modelUrl: DEMO, draftUrl: DRAFT, name: 'leader' });
    const gpuTab = await tab(browsers[1], baseURL!);
    expect(await callInPage<{ id: string } | { error: string }>(gpuTab, PAGE, 'stageStart', { room, name: 'gpu-tab' })).toHaveProperty('id');
    expect(await callInPage<Outcome>(leader, PAGE, 'leaderReady')).toEqual({ ok: true });
    for (const [mode, sampling] of [['pp', GREEDY], ['specpipe', SEEDED]] as const) {
      const r = await callInPage<MeshRunReport>(leader, PAGE, 'leaderGenerate', { prompt: PROMPT, maxNewTokens: N, sampling, mode, draft: 'model', width: 2 } satisfies GenerationRequest);
      console.log(`Node wasm host + webgpu tab, ${mode}: tbt p50 ${r.timings.tbtP50Ms?.toFixed(1)} ms`);
      expect(r.tokens, mode).toEqual(want.get(JSON.stringify(sampling)));
    }
    for (const p of [leader, gpuTab]) await p.close();
  } finally {
    await host.stop();
  }
});
