// WebGPU kernels and stages against the CPU reference (tests/support/cpu-reference.ts), in headless Chromium
// (SwiftShader). The cases and their pass criteria are e2e/pages/kernel-suite.ts, which
// `npm run gpu:node -- test` also runs outside the browser (Dawn for Node, any Vulkan adapter).
import { test, expect, type Page } from '@playwright/test';
import { openHarness, callInPage } from './harness.ts';
import { KERNEL_SUITE } from './pages/kernel-suite.ts';

const PAGE = '/e2e/pages/kernels.ts';

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

for (const c of KERNEL_SUITE) {
  test(c.title, async () => {
    const v = c.judge(await callInPage(page, PAGE, c.fn, c.arg));
    if (v.log) console.log(v.log);
    expect(v.failures, JSON.stringify(v.failures, null, 1)).toEqual([]);
  });
}
