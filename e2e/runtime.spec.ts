// The whole runtime (loader + kernels + scheduler, one tab) against PyTorch: logits and greedy
// tokens of the fixtures that tools/fixtures/make_fixtures.py wrote.
import { test, expect } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { openHarness, callInPage } from './harness.ts';
import type { LocalRunRequest } from '../src/headless/local-run.ts';
import type { GenerationReport } from '../src/app/engine.ts';

interface Reference {
  promptIds: number[];
  greedyTokens: number[];
  logits: number[][];
}

/** PyTorch's greedy run ignores EOS; ours stops at it and leaves it out of the output (eos ids from config.json). */
function untilEos(tokens: number[], modelDir: string): number[] {
  const cfg = JSON.parse(readFileSync(`${modelDir}/config.json`, 'utf8')) as { eos_token_id?: number | number[] };
  const eos = new Set([cfg.eos_token_id ?? []].flat());
  const at = tokens.findIndex((t) => eos.has(t));
  return at < 0 ? tokens : tokens.slice(0, at);
}

const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0 };

for (const name of ['tiny-llama', 'tiny-qwen2', 'tiny-bf16']) {
  test(`${name}: logits match PyTorch and 32 greedy tokens are equal`, async ({ page }) => {
    const ref = JSON.parse(readFileSync(`public/fixtures/${name}/reference.json`, 'utf8')) as Reference;
    await openHarness(page);
    const req: LocalRunRequest = {
      modelUrl: `/fixtures/${name}/`,
      promptIds: ref.promptIds,
      maxNewTokens: ref.greedyTokens.length,
      sampling: GREEDY,
      mode: 'single',
      dumpLogits: ref.logits.length,
    };
    const out = await callInPage<GenerationReport>(page, '/src/headless/local-run.ts', 'runLocal', req);
    const expected = untilEos(ref.greedyTokens, `public/fixtures/${name}`);
    expect(out.tokens).toEqual(expected);
    expect(out.stopReason).toBe(expected.length < ref.greedyTokens.length ? 'eos' : 'length');
    expect(out.logits!.length).toBe(Math.min(ref.logits.length, expected.length));
    let worst = 0;
    out.logits!.forEach((got, step) => {
      const want = ref.logits[step];
      const range = Math.max(...want) - Math.min(...want);
      const diff = Math.max(...want.map((w, i) => Math.abs(w - got[i])));
      worst = Math.max(worst, diff / range);
    });
    console.log(`${name}: max |logit diff| / logit range over ${out.logits!.length} steps = ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-3);
  });
}

test('plain pipeline parallelism over 3 local stages gives the same tokens as one stage', async ({ page }) => {
  const ref = JSON.parse(readFileSync('public/fixtures/tiny-llama/reference.json', 'utf8')) as Reference;
  await openHarness(page);
  const out = await callInPage<GenerationReport>(page, '/src/headless/local-run.ts', 'runLocal', {
    modelUrl: '/fixtures/tiny-llama/',
    promptIds: ref.promptIds,
    maxNewTokens: 16,
    sampling: GREEDY,
    mode: 'pp',
    stages: 3,
  } satisfies LocalRunRequest);
  expect(out.stages).toEqual(['layers 0-0 + embedding', 'layers 1-1', 'layers 2-2 + head']);
  expect(out.tokens).toEqual(ref.greedyTokens.slice(0, 16));
});

test('a bad prompt id gets a clear error', async ({ page }) => {
  await openHarness(page);
  const err = await callInPage<GenerationReport>(page, '/src/headless/local-run.ts', 'runLocal', {
    modelUrl: '/fixtures/tiny-llama/',
    promptIds: [1, 99999],
    maxNewTokens: 2,
    sampling: GREEDY,
    mode: 'single',
  } satisfies LocalRunRequest).then(
    () => null,
    (e: Error) => e.message,
  );
  expect(err).toContain('prompt id 99999 is outside the vocabulary [0, 320)');
});

interface DemoReference {
  cases: { prompt: string; promptIds: number[]; greedyTokens: number[]; greedyText: string }[];
}

test('bundled demo-target: greedy continuations equal the ones PyTorch recorded at training time', async ({ page }) => {
  const ref = JSON.parse(readFileSync('public/models/demo-target/reference.json', 'utf8')) as DemoReference;
  await openHarness(page);
  for (const c of ref.cases) {
    const out = await callInPage<GenerationReport>(page, '/src/headless/local-run.ts', 'runLocal', {
      modelUrl: '/models/demo-target/',
      prompt: c.prompt,
      maxNewTokens: c.greedyTokens.length,
      sampling: GREEDY,
      mode: 'single',
    } satisfies LocalRunRequest);
    expect(out.promptIds, `tokenizer.encode(${JSON.stringify(c.prompt)})`).toEqual(c.promptIds);
    expect(out.tokens, c.prompt).toEqual(untilEos(c.greedyTokens, 'public/models/demo-target'));
    expect(out.text).toBe(c.greedyText);
  }
});
