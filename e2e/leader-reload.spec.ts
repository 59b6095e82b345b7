// A leader tab that reloads mid-generation (issue 16): the chat page saved its settings, the
// conversation, the ring and the running generation in IndexedDB; after the reload it takes the same
// stage tabs back (their layers and KV kept), finishes the generation from its last committed token,
// and the answer is the one a single-tab run gives.
import { test, expect, type Page } from '@playwright/test';

async function finished(page: Page, timeout: number): Promise<string> {
  await expect(page.locator('#status')).toHaveText(/^(done: .*|error|stopped)$/, { timeout });
  if ((await page.locator('#status').textContent()) === 'error') throw new Error(`the page shows an error: ${await page.locator('#error').textContent()}`);
  return (await page.locator('#transcript .assistant').last().textContent()) ?? '';
}

test('the leader tab reloaded mid-generation resumes on the same stage tabs and finishes with single\'s text', async ({ browser }) => {
  test.setTimeout(300_000);
  const room = `reload-e2e-${Date.now().toString(36)}`;
  const context = await browser.newContext();
  const stages = [await context.newPage(), await context.newPage()];
  for (const s of stages) await s.goto(`/?room=${room}&stage`);
  const page = await context.newPage();
  const errors: string[] = [];
  const log: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.text().startsWith('[mesh]') && log.push(m.text()));
  await page.goto(`/?room=${room}`);
  await page.locator('#placement').selectOption('mesh');
  await page.locator('#stages').fill('2');
  await page.locator('select[name=mode]').selectOption('pp');
  await page.locator('#max-tokens').fill('40');
  await page.locator('#hop-delay, input[name=hop-delay]').first().fill('20'); // slow enough to cut it mid-way
  await page.locator('#prompt').fill('And God said');
  await page.locator('#send').click();
  const out = page.locator('#transcript .assistant').last();
  await expect.poll(async () => (await out.textContent())?.length ?? 0, { timeout: 120_000, intervals: [50] }).toBeGreaterThan(15);
  const before = (await out.textContent()) ?? '';
  const stagePhases = async (): Promise<(string | null)[]> => Promise.all(stages.map((s) => s.locator('#stage-status').getAttribute('data-phase')));
  expect(await stagePhases()).toEqual(['ready', 'ready']);

  const reloadedAt = Date.now();
  await page.reload();
  // The conversation and settings come back at once; the cut answer goes on where it stopped.
  await expect(page.locator('#transcript .prompt').first()).toHaveText('And God said');
  await expect(page.locator('#placement')).toHaveValue('mesh');
  const resumed = await finished(page, 180_000);
  console.log(`resumed ${Date.now() - reloadedAt} ms after the reload; ${before.length} characters before it, ${resumed.length} after`);
  await expect(page.locator('#status')).toHaveText(/^done: resumed after the reload, 40 tokens$/);
  expect(resumed.startsWith(before.trimEnd().slice(0, -3))).toBe(true);
  // The same stage tabs, with their layers: taken back, no reload of weights; they kept the committed text's KV.
  const text = log.join('\n');
  expect(text).toContain('taking back 2 stage tab(s) of the previous leader');
  expect(text).toMatch(/resumed request 1: \d+ of \d+ committed positions kept/);
  expect(text).not.toContain('the layers are split afresh');
  for (const s of stages) await expect(s.locator('#stage-status')).toHaveAttribute('data-phase', 'ready');

  // The same prompt with every layer in this tab: the same answer.
  await page.locator('#placement').selectOption('tab');
  await page.locator('select[name=mode]').selectOption('single');
  await page.locator('#prompt').fill('And God said');
  await page.locator('#send').click();
  expect(await finished(page, 120_000)).toBe(resumed);
  expect(errors).toEqual([]);
  await context.close();
});
