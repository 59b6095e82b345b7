// `npm start` end to end: the production build (vite build) served over HTTPS by src/server/main.ts
// runs the chat page in a real browser: WebGPU in a secure context, the bundled model, a generation,
// all under the server's Content-Security-Policy (no violation), and the page's own signalling
// socket passes the Origin check.
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
  server = spawn(process.execPath, ['--import', 'tsx', 'src/server/main.ts', '--port', String(port), '--host', '127.0.0.1', '--dist', dist], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  server.stdout?.on('data', (d) => (output += String(d)));
  server.stderr?.on('data', (d) => (output += String(d)));
  await expect.poll(() => output, { timeout: 30_000 }).toContain('Join link');

  const context = await browser.newContext({ ignoreHTTPSErrors: true }); // the self-signed certificate
  const page = await context.newPage();
  const violations: string[] = [];
  page.on('console', (m) => {
    if (/Content.Security.Policy|Refused to/i.test(m.text())) violations.push(m.text());
  });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`Content-Security-Policy violation: ${e.violatedDirective} ${e.blockedURI}`));
  });
  const response = await page.goto(`https://127.0.0.1:${port}/`);
  expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
  await page.locator('select[name=mode]').selectOption('single');
  await page.locator('#max-tokens').fill('6');
  await page.locator('#send').click();
  await expect(page.locator('#status')).toHaveText(/^(done: .*|error)$/, { timeout: 120_000 });
  expect(await page.locator('#error').isHidden(), await page.locator('#error').textContent() ?? '').toBe(true);
  await expect(page.locator('#status')).toHaveText(/done: 6 tokens \(length\)/);
  await expect(page.locator('#transcript .assistant')).not.toHaveText('');
  // The page's signalling socket (same origin, wss: to this host) gets in under the CSP.
  const joined = await page.evaluate(
    () =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(`wss://${location.host}/signal`);
        ws.onopen = () => ws.send(JSON.stringify({ type: 'join', version: 1, room: 'csp-check' }));
        ws.onmessage = (e) => (resolve((JSON.parse(String(e.data)) as { type: string }).type), ws.close());
        ws.onerror = () => resolve('error');
      }),
  );
  expect(joined).toBe('welcome');
  expect(violations).toEqual([]);
  await context.close();
});
