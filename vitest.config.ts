import { defineConfig } from 'vitest/config';

// Unit tests: pure logic in Node. Anything that needs WebGPU runs under Playwright (e2e/).
export default defineConfig({
  test: { include: ['tests/**/*.test.ts'], environment: 'node', testTimeout: 30_000 },
});
