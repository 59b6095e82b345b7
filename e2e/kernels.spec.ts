// WebGPU kernels and stages against the CPU reference (src/gpu/reference.ts). Runs on SwiftShader.
import { test, expect, type Page } from '@playwright/test';
import { openHarness, callInPage } from './harness.ts';

const PAGE = '/e2e/pages/kernels.ts';
interface Check { name: string; maxErr: number; tol: number; ok: boolean }

let page: Page;
test.describe.configure({ mode: 'serial' });
test.beforeAll(async ({ browser }) => {
  page = await browser.newPage();
  await openHarness(page);
  console.log(`adapter: ${JSON.stringify(await callInPage(page, PAGE, 'adapter'))}`);
});
test.afterAll(async () => {
  await page.close();
});

function expectChecks(checks: Check[]): void {
  const bad = checks.filter((c) => !c.ok);
  const ratio = (c: Check) => (c.tol ? c.maxErr / c.tol : c.maxErr);
  const worst = checks.reduce((a, c) => (ratio(c) > ratio(a) ? c : a), checks[0]);
  console.log(`${checks.length} checks, worst error/tolerance ${ratio(worst).toExponential(2)} (${worst.name})`);
  expect(bad, JSON.stringify(bad, null, 1)).toEqual([]);
}

test('matmul (f32, f16; bias, residual, gated; odd shapes; 1..64 rows)', async () => {
  expectChecks(await callInPage<Check[]>(page, PAGE, 'testMatmul'));
});

test('embedding, rmsnorm, rope + KV write', async () => {
  expectChecks(await callInPage<Check[]>(page, PAGE, 'testSmallKernels'));
});

test('attention over committed + ancestor + own slots (GQA, long lists)', async () => {
  expectChecks(await callInPage<Check[]>(page, PAGE, 'testAttention'));
});

test('sampling: argmax, temperature, top-k, top-p match the CPU reference', async () => {
  const r = await callInPage<{ checked: number; skipped: number; mismatches: string[] }>(page, PAGE, 'testSampling');
  console.log(`sampling: ${r.checked} rows checked, ${r.skipped} skipped as boundary cases`);
  expect(r.mismatches).toEqual([]);
  expect(r.checked).toBeGreaterThan(100);
});

test('matmul rows are bitwise batch-independent', async () => {
  const r = await callInPage<{ name: string; differing: number }[]>(page, PAGE, 'testMatmulBatchIndependence');
  expect(r.filter((x) => x.differing > 0)).toEqual([]);
});

for (const format of ['f32', 'f16']) {
  test(`stage forward vs CPU reference (${format})`, async () => {
    const r = await callInPage<{ name: string; maxErr: number; maxLogit: number; tokensEqual: boolean }[]>(page, PAGE, 'testStageVsReference', { format });
    for (const x of r) {
      console.log(`${x.name}: max |logit err| ${x.maxErr.toExponential(2)} (max |logit| ${x.maxLogit.toFixed(2)})`);
      expect(x.maxErr).toBeLessThan(1e-3);
      expect(x.tokensEqual).toBe(true);
    }
  });

  test(`stage batch independence: a row alone == inside 64 rows (${format})`, async () => {
    const r = await callInPage<{ differing: number; maxErr: number }>(page, PAGE, 'testStageBatchIndependence', { format });
    expect(r.differing).toBe(0);
  });

  test(`tree attention in one batch == each root-to-leaf path as a sequence (${format})`, async () => {
    const r = await callInPage<{ rows: number; differing: number; maxErr: number; refMaxErr: number }>(page, PAGE, 'testTreeAttention', { format });
    console.log(JSON.stringify(r));
    expect(r.rows).toBe(9); // three root-to-leaf paths of three nodes
    expect(r.differing).toBe(0);
    expect(r.refMaxErr).toBeLessThan(1e-3);
  });

  test(`stage split [0,2)+[2,4) == one stage [0,4) (${format})`, async () => {
    const r = await callInPage<{ differing: number; maxErr: number }>(page, PAGE, 'testStageSplit', { format });
    expect(r.differing).toBe(0);
  });
}

test('Qwen2-style stage (q/k/v bias, tied embeddings) vs CPU reference', async () => {
  const r = await callInPage<{ name: string; maxErr: number; tokensEqual: boolean }[]>(page, PAGE, 'testStageVsReference', { format: 'f16', qwen: true, tied: true });
  for (const x of r) {
    expect(x.maxErr).toBeLessThan(1e-3);
    expect(x.tokensEqual).toBe(true);
  }
});

test('GPU kernel variants (4 lanes per output, workgroup attention): stage vs reference, batch independence, tree', async () => {
  const arg = { format: 'f16', gpuVariants: true };
  for (const x of await callInPage<{ name: string; maxErr: number; tokensEqual: boolean }[]>(page, PAGE, 'testStageVsReference', arg)) {
    expect(x.maxErr).toBeLessThan(1e-3);
    expect(x.tokensEqual).toBe(true);
  }
  expect((await callInPage<{ differing: number }>(page, PAGE, 'testStageBatchIndependence', arg)).differing).toBe(0);
  expect((await callInPage<{ differing: number }>(page, PAGE, 'testTreeAttention', arg)).differing).toBe(0);
});
