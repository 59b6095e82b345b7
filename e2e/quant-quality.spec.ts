// Perplexity of the bundled demo-target on held-out text with f16, Q8_0 and Q4_0 projections,
// through the real runtime. Needs the held-out tokens of tools/train (fetch_corpus.py + bpe.py
// encode-corpus: tools/train/.cache/tokens/heldout.u16), so it runs only when asked:
//   PPL_WINDOWS=64 TEST_PORT=5195 npx playwright test e2e/quant-quality.spec.ts
// (PPL_WINDOWS evenly spaced windows of 256 tokens, the windows of tools/train/evaluate.py).
import { test, expect } from '@playwright/test';
import { existsSync, readFileSync } from 'node:fs';
import { openHarness, callInPage } from './harness.ts';
import type { PerplexityReport } from './pages/perplexity.ts';

const HELDOUT = 'tools/train/.cache/tokens/heldout.u16';
const SEQ = 256;
const count = Number(process.env.PPL_WINDOWS ?? 0);

test('demo-target perplexity on held-out text: f16 vs Q8_0 vs Q4_0', async ({ page }) => {
  test.skip(!count || !existsSync(HELDOUT), `set PPL_WINDOWS and create ${HELDOUT} (tools/train/README.md)`);
  test.setTimeout(3_600_000);
  const b = readFileSync(HELDOUT);
  const held = new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
  const total = Math.floor((held.length - 1) / SEQ);
  const picks = Array.from({ length: Math.min(count, total) }, (_, k) => Math.floor((k * total) / Math.min(count, total)));
  const windows = picks.map((i) => [...held.subarray(i * SEQ, i * SEQ + SEQ + 1)]);
  await openHarness(page);
  const rows: PerplexityReport[] = [];
  for (const quant of [undefined, 'q8_0', 'q4_0']) {
    const r = await callInPage<PerplexityReport>(page, '/e2e/pages/perplexity.ts', 'perplexity', { url: '/models/demo-target/', quant, windows });
    console.log(JSON.stringify(r));
    rows.push(r);
  }
  console.log(`held-out windows ${windows.length} of ${total} (every ${(total / windows.length).toFixed(2)}th), ${rows[0].tokens} scored tokens`);
  for (const r of rows) console.log(`| ${r.quant} | ${r.ppl.toFixed(3)} | ${((r.ppl / rows[0].ppl - 1) * 100).toFixed(2)}% | ${r.projectionBytes} | ${r.weightBytes} | ${(r.ms / 1000).toFixed(0)} s |`);
  expect(rows.every((r) => r.tokens === rows[0].tokens && Number.isFinite(r.ppl))).toBe(true);
});
