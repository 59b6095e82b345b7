// The chat page in a real browser (headless Chromium, SwiftShader WebGPU): load the bundled pair,
// stream a continuation in specpipe mode, stop it, and check the stats and the pipeline picture.
import { test, expect } from '@playwright/test';

test('chat page streams tokens, stops, and shows live stats', async ({ page }, info) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
  await expect(page.locator('#mesh-unavailable')).toBeVisible();
  await expect(page.locator('#join-link')).toHaveText(/\?room=mesh-[a-z0-9]+&stage$/);
  await page.locator('#max-tokens').fill('400');
  await page.locator('#prompt').fill('And God said');
  await page.locator('#send').click();

  const out = page.locator('#transcript .assistant').last();
  // Tokens stream: the text grows while the run is going.
  await expect(out).not.toHaveText('', { timeout: 120_000 });
  const early = (await out.textContent())!.length;
  await expect.poll(async () => (await out.textContent())!.length, { timeout: 60_000 }).toBeGreaterThan(early);
  await expect(page.locator('#stop')).toBeEnabled();
  await page.locator('#stop').click();
  await expect(page.locator('#status')).toHaveText(/\(abort\)/);
  await expect(page.locator('#send')).toBeEnabled();
  const stopped = (await out.textContent())!;
  expect(stopped.length).toBeGreaterThan(early);

  const stats = page.locator('#stats-panel');
  await expect(stats).toBeVisible();
  const statText = (await page.locator('#stats').innerText()).replace(/\s+/g, ' ');
  expect(statText).toMatch(/tokens\/s \d+\.\d/);
  expect(statText).toMatch(/between tokens p50 \/ p95 \d+\.\d \/ \d+\.\d ms/);
  expect(statText).toMatch(/hit rate \d+% \(\d+ hits, \d+ misses\)/);
  expect(statText).toMatch(/tokens per step \/ bound \d\.\d\d \/ \d\.\d\d/);
  expect(statText).toContain('stop abort');
  // The pipeline picture has a cell for every stage that computed a level.
  await expect(page.locator('#pipeline svg rect[data-stage="0"]').first()).toBeVisible();
  await expect(page.locator('#pipeline svg rect[data-stage="1"]').first()).toBeVisible();
  const shot = await page.screenshot({ fullPage: true, path: info.outputPath('chat.png') });
  expect(shot.byteLength).toBeGreaterThan(10_000);
  const panelShot = await stats.screenshot();
  expect(panelShot.byteLength).toBeGreaterThan(2_000);

  // The loaded model is kept: a second prompt in single mode... reloads (one stage) and finishes.
  await page.locator('select[name=mode]').selectOption('single');
  await page.locator('#max-tokens').fill('8');
  await page.locator('#send').click();
  await expect(page.locator('#status')).toHaveText(/done: \d+ tokens \((length|eos)\)/, { timeout: 120_000 });
  expect(errors).toEqual([]);
});

test('a bad model URL shows a clear error', async ({ page }) => {
  await page.goto('/');
  await page.locator('#target-url').fill('/models/no-such-model/');
  await page.locator('#load').click();
  const error = page.locator('#error');
  await expect(error).toBeVisible();
  await expect(error).toContainText('Could not load the target model from /models/no-such-model/');
  await expect(error).toContainText('config.json');
  await expect(page.locator('#load')).toBeVisible();
});
