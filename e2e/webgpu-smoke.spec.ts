import { test, expect } from '@playwright/test';
import { openHarness, callInPage } from './harness.ts';

test('headless Chromium exposes a WebGPU adapter', async ({ page }) => {
  await openHarness(page);
  const info = await callInPage<{ vendor: string; features: string[] }>(page, '/e2e/pages/webgpu-smoke.ts', 'adapterInfo');
  console.log(`adapter: ${JSON.stringify(info)}`);
  expect(info.vendor.length).toBeGreaterThan(0);
});

test('GpuContext.lost stays pending on an intentional device.destroy()', async ({ page }) => {
  await openHarness(page);
  const r = await callInPage<{ deviceLostReason: string; contextLost: string }>(page, '/e2e/pages/webgpu-smoke.ts', 'intentionalDestroy');
  expect(r).toEqual({ deviceLostReason: 'destroyed', contextLost: 'pending' });
});
