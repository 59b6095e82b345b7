import { defineConfig } from '@playwright/test';
import { findChromium, chromiumArgs } from './src/cli/browser.ts';

const port = Number(process.env.TEST_PORT ?? 5179);

export default defineConfig({
  testDir: 'e2e',
  testMatch: '**/*.spec.ts',
  // SwiftShader runs WebGPU on the CPU: one worker, generous timeouts.
  workers: 1,
  timeout: 300_000,
  expect: { timeout: 60_000 },
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    launchOptions: { executablePath: findChromium(), args: chromiumArgs },
  },
  webServer: {
    command: `npx vite --port ${port} --strictPort`,
    url: `http://127.0.0.1:${port}/e2e/harness.html`,
    env: { VITE_NO_WATCH: '1' },
    reuseExistingServer: false,
    timeout: 60_000,
  },
});
