// The chat page in a real browser (headless Chromium, SwiftShader WebGPU): load the bundled pair,
// stream a continuation in specpipe mode, stop it, and check the stats and the pipeline picture.
import { test, expect, type Page } from '@playwright/test';

/** Waits until the page finished a generation; an error shows its message in the failure. */
async function finished(page: Page, timeout: number): Promise<void> {
  await expect(page.locator('#status')).toHaveText(/^(done: .*|error|stopped)$/, { timeout });
  if ((await page.locator('#status').textContent()) === 'error') throw new Error(`the page shows an error: ${await page.locator('#error').textContent()}`);
}

test('chat page streams tokens, stops, and shows live stats', async ({ page }, info) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
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

  expect(statText).toMatch(/devices no emulation/);
  expect(statText).toMatch(/bound \(final\) mean TBT \d+\.\d ms, bound \d+\.\d ms \(specpipe: .*efficiency \d+%/);

  // The loaded model is kept: a second prompt in single mode... reloads (one stage) and finishes,
  // here on an emulated dedicated device (each level at least 20 ms): the stats say so.
  await page.locator('select[name=mode]').selectOption('single');
  await page.locator('#max-tokens').fill('8');
  await page.locator('#stage-ms').fill('20');
  await page.locator('#send').click();
  await finished(page, 120_000);
  await expect(page.locator('#status')).toHaveText(/done: \d+ tokens \((length|eos)\)/);
  const emulated = (await page.locator('#stats').innerText()).replace(/\s+/g, ' ');
  expect(emulated).toContain('emulated dedicated devices: stage 20 ms/level, draft real');
  expect(emulated).toMatch(/overruns \d+%/);
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

test('chat page over stage tabs: the mesh view fills in and the text equals a single-tab run', async ({ browser }, info) => {
  const room = `chat-e2e-${Date.now().toString(36)}`;
  const context = await browser.newContext();
  const stages = [await context.newPage(), await context.newPage()];
  for (const s of stages) await s.goto(`/?room=${room}&stage`);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`/?room=${room}`);
  await page.locator('#placement').selectOption('mesh');
  await page.locator('#stages').fill('2');
  await page.locator('select[name=mode]').selectOption('specpipe');
  await page.locator('#max-tokens').fill('12');
  await page.locator('#prompt').fill('And God said');
  await page.locator('#send').click();
  await finished(page, 180_000);
  await expect(page.locator('#status')).toHaveText(/done: \d+ tokens \((length|eos)\)/);
  const meshText = await page.locator('#transcript .assistant').last().textContent();
  expect(meshText!.length).toBeGreaterThan(0);
  await expect(page.locator('#mesh-phase')).toContainText(room);
  await expect(page.locator('#mesh-stages tr')).toHaveCount(3);
  await expect(page.locator('#mesh-stages')).toContainText('layers 0-');
  await expect(page.locator('#mesh-stages')).toContainText('+ head');
  await expect(page.locator('#mesh-hops li').first()).toContainText('round trip p50');
  expect(await page.locator('#stats').innerText()).toMatch(/hit rate \(final\)\s+\d+%/);
  await page.screenshot({ fullPage: true, path: info.outputPath('chat-mesh.png') });
  for (const s of stages) {
    await expect(s.locator('#stage-status')).toHaveAttribute('data-phase', 'ready');
    await expect(s.locator('#stage-status')).toContainText('layers');
  }

  // The same prompt with every layer in this tab gives the same text (lossless across placements).
  await page.locator('select[name=mode]').selectOption('single');
  await page.locator('#send').click();
  await finished(page, 120_000);
  expect(await page.locator('#transcript .assistant').last().textContent()).toBe(meshText);
  expect(errors).toEqual([]);
  await context.close();
});

test('a model picked as local files loads (no URL involved)', async ({ page }) => {
  await page.goto('/');
  const dir = 'public/models/demo-target';
  await page.locator('#target-url').fill('/models/no-such-model/'); // ignored: picked files win
  await page.locator('#target-files').setInputFiles(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].map((f) => `${dir}/${f}`));
  await page.locator('select[name=mode]').selectOption('single');
  await page.locator('#load').click();
  await expect(page.locator('#status')).toHaveText(/model ready/, { timeout: 120_000 });
  await expect(page.locator('#model-info')).toContainText('8 layers, vocabulary 4096');
  await expect(page.locator('#error')).toBeHidden();
});
