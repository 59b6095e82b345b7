// SpecPipe is lossless: for the same prompt, seed and settings, specpipe, tree and pp emit exactly
// the tokens of a single stage. Bundled target + draft pair, stages local to one tab (the ring of
// tabs is covered by ring-pipeline.spec.ts), greedy and seeded sampling.
import { test, expect } from '@playwright/test';
import { openHarness, callInPage } from './harness.ts';
import type { LosslessCase, LosslessRequest, LosslessRun } from './pages/lossless.ts';

const PROMPTS = ['The whale', 'In the beginning God created', 'Mr. Speaker, the state of the Union'];
const SAMPLINGS = [
  { temperature: 0, topK: 0, topP: 1, seed: 0 },
  { temperature: 0.9, topK: 40, topP: 0.9, seed: 1234 },
];

function cases(): LosslessCase[] {
  const out: LosslessCase[] = [{ stages: 1, mode: 'single', draft: 'none', width: 1 }];
  for (const stages of [2, 4, 8]) {
    out.push({ stages, mode: 'pp', draft: 'none', width: 1 });
    out.push({ stages, mode: 'specpipe', draft: 'model', width: stages === 4 ? 3 : 1 });
    out.push({ stages, mode: 'tree', draft: 'model', width: 2 });
  }
  out.push({ stages: 4, mode: 'specpipe', draft: 'ngram', width: 2 });
  return out;
}

test('specpipe, tree and pp emit the same tokens as a single stage (2, 4, 8 stages; greedy and sampled)', async ({ page }) => {
  test.setTimeout(900_000);
  await openHarness(page);
  const runs = await callInPage<LosslessRun[]>(page, '/e2e/pages/lossless.ts', 'runLossless', {
    modelUrl: '/models/demo-target/',
    draftUrl: '/models/demo-draft/',
    prompts: PROMPTS,
    samplings: SAMPLINGS,
    cases: cases(),
    maxNewTokens: 20,
  } satisfies LosslessRequest);
  const reference = (p: number, s: number) => runs.find((r) => r.mode === 'single' && r.prompt === p && r.sampling === s)!.tokens;
  for (const r of runs) {
    const label = `${r.mode} S=${r.stages} W=${r.width} draft=${r.draft} prompt ${r.prompt} sampling ${r.sampling}`;
    expect(r.tokens, label).toEqual(reference(r.prompt, r.sampling));
    if (r.mode === 'specpipe' || r.mode === 'tree') console.log(`${label}: hit rate ${r.metrics.hitRate?.toFixed(2)}`);
  }
  // Sampling really samples: the sampled text differs from the greedy one for some prompt.
  expect(PROMPTS.some((_, p) => reference(p, 1).join() !== reference(p, 0).join())).toBe(true);
  // The draft really speculates: specpipe with the draft model hits most of the time on greedy text.
  const greedyHits = runs.filter((r) => r.mode === 'specpipe' && r.draft === 'model' && r.sampling === 0).map((r) => r.metrics.hitRate ?? 0);
  expect(Math.min(...greedyHits)).toBeGreaterThan(0.4);
});
