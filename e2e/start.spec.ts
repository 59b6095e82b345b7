// `npm start` end to end: the production build (vite build) served over HTTPS by src/server/main.ts
// runs the chat page in a real browser: WebGPU in a secure context, the bundled model, a generation.
import { test, expect } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'vite';

let server: ChildProcess | null = null;
test.afterAll(() => {
  server?.kill('SIGTERM');
});

test('the production build served by npm start generates text', async ({ browser }) => {
  const dist = mkdtempSync(join(tmpdir(), 'specpipe-dist-'));
  await build({ configFile: 'vite.config.ts', logLevel: 'error', build: { outDir: dist, emptyOutDir: true } });
  const port = 21000 + Math.floor(Math.random() * 20000);
  server = spawn('npx', ['tsx', 'src/server/main.ts', '--port', String(port), '--host', '127.0.0.1', '--dist', dist], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  server.stdout?.on('data', (d) => (output += String(d)));
  server.stderr?.on('data', (d) => (output += String(d)));
  await expect.poll(() => output, { timeout: 30_000 }).toContain('Join link');

  const context = await browser.newContext({ ignoreHTTPSErrors: true }); // the self-signed certificate
  const page = await context.newPage();
  await page.goto(`https://127.0.0.1:${port}/`);
  await page.locator('select[name=mode]').selectOption('single');
  await page.locator('#max-tokens').fill('6');
  await page.locator('#send').click();
  await expect(page.locator('#status')).toHaveText(/^(done: .*|error)$/, { timeout: 120_000 });
  expect(await page.locator('#error').isHidden(), await page.locator('#error').textContent() ?? '').toBe(true);
  await expect(page.locator('#status')).toHaveText(/done: 6 tokens \(length\)/);
  await expect(page.locator('#transcript .assistant')).not.toHaveText('');
  await context.close();
});
