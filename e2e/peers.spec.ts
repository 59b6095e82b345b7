// `npm run bench:peers` end to end, kept short (4 tokens, context 32): its own Vite server and
// headless Chromium, the ONNX and GGUF exports, every engine in a fresh tab.
import { test, expect } from '@playwright/test';
import { execFile } from 'node:child_process';
import type { PeersReport } from '../src/cli/bench-peers-report.ts';

const TOKENS = 4;

test('bench:peers --json: every engine decodes the same prompt ids, and the agreement with this project is reported', async () => {
  test.setTimeout(300_000);
  const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile('npx', ['tsx', 'src/cli/bench-peers.ts', '--json', '--tokens', String(TOKENS), '--contexts', '32'], { timeout: 280_000, maxBuffer: 1 << 24 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as NodeJS.ErrnoException & { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
  const report = JSON.parse(out.stdout.trim().split('\n').pop() ?? '{}') as PeersReport;
  console.log(report.results.map((r) => `${r.engine}: ${r.msPerToken?.toFixed(1) ?? r.error} ms/token, first difference ${String(r.firstDifference)}`).join('\n'));
  expect(out.code, out.stderr.slice(-2000)).toBe(0);
  expect(Object.keys(report).sort()).toEqual(['conditions', 'results']);

  const engines = report.results.map((r) => r.engine);
  for (const e of ['specpipe-mesh webgpu', 'specpipe-mesh wasm 1 thread', 'onnxruntime-web wasm 1 thread', 'onnxruntime-web webgpu', 'wllama f32 1 thread', 'wllama f16 1 thread']) expect(engines).toContain(e);
  for (const r of report.results) {
    expect(r.context).toBe(32);
    expect(r.tokens, r.engine).toHaveLength(TOKENS);
    expect(r.msPerToken, r.engine).toBeGreaterThan(0);
    // The agreement is reported for every engine (null: the same tokens as this project).
    expect(r.firstDifference, r.engine).not.toBeUndefined();
  }
  // Independent implementations of one exported model: a broken export would disagree everywhere.
  expect(report.results.filter((r) => r.engine !== 'specpipe-mesh webgpu' && r.firstDifference === null).length).toBeGreaterThan(0);
});
