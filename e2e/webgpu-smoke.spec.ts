import { test, expect } from '@playwright/test';
import { openHarness, callInPage } from './harness.ts';

test('headless Chromium exposes a WebGPU adapter', async ({ page }) => {
  await openHarness(page);
  const info = await callInPage<{ vendor: string; features: string[] }>(page, '/e2e/pages/webgpu-smoke.ts', 'adapterInfo');
  console.log(`adapter: ${JSON.stringify(info)}`);
  expect(info.vendor.length).toBeGreaterThan(0);
});
