// The whole runtime (loader + kernels + scheduler, one tab) against PyTorch: logits and greedy
// tokens of the fixtures that tools/fixtures/make_fixtures.py wrote.
import { test, expect } from '@playwright/test';
import { readFileSync } from 'node:fs';
import { openHarness, callInPage } from './harness.ts';
import type { LocalRunReport, LocalRunRequest } from '../src/app/local-run.ts';

interface Reference {
  promptIds: number[];
  greedyTokens: number[];
  logits: number[][];
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
    const out = await callInPage<LocalRunReport>(page, '/src/app/local-run.ts', 'runLocal', req);
    expect(out.tokens).toEqual(ref.greedyTokens);
    expect(out.logits!.length).toBe(ref.logits.length);
    let worst = 0;
    ref.logits.forEach((want, step) => {
      const got = out.logits![step];
      const range = Math.max(...want) - Math.min(...want);
      const diff = Math.max(...want.map((w, i) => Math.abs(w - got[i])));
      worst = Math.max(worst, diff / range);
    });
    console.log(`${name}: max |logit diff| / logit range over ${ref.logits.length} steps = ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-3);
  });
}

test('plain pipeline parallelism over 3 local stages gives the same tokens as one stage', async ({ page }) => {
  const ref = JSON.parse(readFileSync('public/fixtures/tiny-llama/reference.json', 'utf8')) as Reference;
  await openHarness(page);
  const out = await callInPage<LocalRunReport>(page, '/src/app/local-run.ts', 'runLocal', {
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
  const err = await callInPage<LocalRunReport>(page, '/src/app/local-run.ts', 'runLocal', {
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
