// Runs an exported function of a browser-side module (served by Vite) inside the page.
import type { Page } from '@playwright/test';

export async function openHarness(page: Page): Promise<void> {
  page.on('console', (m) => {
    if (m.type() === 'error' || process.env.DEBUG_BROWSER) console.log(`[browser ${m.type()}] ${m.text()}`);
  });
  page.on('pageerror', (e) => console.log(`[browser pageerror] ${e.message}`));
  await page.goto('/e2e/harness.html');
}

/** Imports `modulePath` (e.g. '/e2e/pages/kernels.ts') in the page and calls its export `fn` with `arg`. */
export async function callInPage<T>(page: Page, modulePath: string, fn: string, arg?: unknown): Promise<T> {
  return page.evaluate(
    async ([path, name, a]) => {
      const mod = (await import(/* @vite-ignore */ path as string)) as Record<string, (x: unknown) => unknown>;
      const f = mod[name as string];
      if (typeof f !== 'function') throw new Error(`${path as string} has no export ${name as string}`);
      return f(a);
    },
    [modulePath, fn, arg] as const,
  ) as Promise<T>;
}
