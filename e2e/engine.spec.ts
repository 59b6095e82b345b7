// The public Engine API in a real browser: load with progress, a token stream, abort, the same
// seeded sample in single and specpipe, typed errors after dispose and when the GPU goes away.
import { test, expect } from '@playwright/test';
import { openHarness, callInPage } from './harness.ts';
import type { StreamOutcome } from './pages/engine.ts';

const PAGE = '/e2e/pages/engine.ts';

test('engine: progress, streamed tokens, seeded sampling lossless across modes, abort, dispose', async ({ page }) => {
  await openHarness(page);
  const o = await callInPage<StreamOutcome>(page, PAGE, 'streamAndAbort');
  const last = o.progress.filter((p) => p.part === 'target').at(-1)!;
  expect(last.total).toBeGreaterThan(1_000_000);
  expect(last.done).toBe(last.total);
  expect(o.streamed.map((t) => t.token)).toEqual(o.report.tokens);
  expect(o.streamed.map((t) => t.index)).toEqual(o.report.tokens.map((_, i) => i));
  expect(o.streamed.map((t) => t.text).join('')).toBe(o.report.text);
  expect(o.report.tokens.length).toBeGreaterThan(4);
  // Sampled (T 0.8, top-p 0.95, seed 1), yet specpipe over 2 stages with the draft gives the same tokens.
  expect(o.specpipe.tokens).toEqual(o.report.tokens);
  expect(o.specpipe.metrics.hits + o.specpipe.metrics.misses).toBeGreaterThan(0);
  expect(o.aborted.stopReason).toBe('abort');
  expect(o.aborted.tokens.length).toBeLessThan(400);
  expect(o.afterDispose).toEqual({ name: 'BadRequestError', code: 'bad-request', message: 'the engine was disposed' });
});

test('engine: a lost GPU device fails the engine with DeviceLostError', async ({ page, browser }) => {
  await openHarness(page);
  await callInPage(page, PAGE, 'loadAndHold');
  expect(await callInPage<string>(page, PAGE, 'generateOnHeld')).toBe('ok');
  // Crash the GPU process (it serves every tab's WebGPU device): what a driver reset does.
  const cdp = await browser.newBrowserCDPSession();
  await cdp.send('Browser.crashGpuProcess').catch(() => undefined);
  await expect.poll(() => callInPage<{ phase: string }[]>(page, PAGE, 'heldPhases').then((p) => p.map((x) => x.phase)), { timeout: 30_000 }).toContain('failed');
  const failed = (await callInPage<{ phase: string; error: string | null; errorName: string | null }[]>(page, PAGE, 'heldPhases')).find((p) => p.phase === 'failed')!;
  expect(failed.errorName).toBe('DeviceLostError');
  expect(await callInPage<string>(page, PAGE, 'generateOnHeld')).toMatch(/^DeviceLostError: /);
});
