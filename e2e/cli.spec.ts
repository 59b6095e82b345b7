// `npm run generate` as users and benchmarks call it: its own Vite server and headless Chromium.
import { test, expect } from '@playwright/test';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';

function generate(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('npx', ['tsx', 'src/cli/generate.ts', ...args], { timeout: 240_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as NodeJS.ErrnoException & { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

test('generate --json on a fixture prints the PyTorch greedy tokens, logits and timings', async () => {
  const ref = JSON.parse(readFileSync('public/fixtures/tiny-llama/reference.json', 'utf8')) as { promptIds: number[]; greedyTokens: number[] };
  const out = await generate(['--model', 'public/fixtures/tiny-llama', '--prompt-ids', ref.promptIds.join(','), '--max-new-tokens', '8', '--dump-logits', '2', '--json']);
  expect(out.code, out.stderr).toBe(0);
  const report = JSON.parse(out.stdout.trim().split('\n').pop()!) as { tokens: number[]; logits: number[][]; timings: { ttftMs: number } };
  expect(report.tokens).toEqual(ref.greedyTokens.slice(0, 8));
  expect(report.logits.map((l) => l.length)).toEqual([320, 320]);
  expect(report.timings.ttftMs).toBeGreaterThan(0);
});

test('generate refuses a directory without a model, and a missing prompt, with clear errors', async () => {
  const noModel = await generate(['--model', 'e2e', '--prompt-ids', '1,2', '--json']);
  expect(noModel.code).not.toBe(0);
  expect(noModel.stderr).toContain('model e2e: no config.json in that directory');
  const noPrompt = await generate(['--model', 'public/fixtures/tiny-llama', '--json']);
  expect(noPrompt.code).not.toBe(0);
  expect(noPrompt.stderr).toContain('give exactly one of --prompt TEXT or --prompt-ids 1,2,3');
});

test('generate --stages 2 --browsers 2 --json: a mesh of tabs gives the same tokens and reports each hop', async () => {
  const ref = JSON.parse(readFileSync('public/fixtures/tiny-llama/reference.json', 'utf8')) as { promptIds: number[]; greedyTokens: number[] };
  const out = await generate(['--model', 'public/fixtures/tiny-llama', '--prompt-ids', ref.promptIds.join(','), '--max-new-tokens', '8', '--mode', 'pp', '--stages', '2', '--browsers', '2', '--hop-delay-ms', '5', '--split', 'equal', '--json']);
  expect(out.code, out.stderr).toBe(0);
  const report = JSON.parse(out.stdout.trim().split('\n').pop()!) as { tokens: number[]; stages: string[]; hops: { from: string; to: string; rttP50Ms: number; rttP95Ms: number }[] };
  expect(report.tokens).toEqual(ref.greedyTokens.slice(0, 8));
  expect(report.stages).toEqual(['layers 0-1 + embedding', 'layers 2-2 + head']);
  expect(report.hops.map((h) => `${h.from}->${h.to}`)).toEqual(['leader->stage 1', 'stage 1->stage 2', 'stage 2->leader']);
  // 5 ms each way on every link.
  for (const h of report.hops) {
    expect(h.rttP50Ms).toBeGreaterThanOrEqual(10);
    expect(h.rttP95Ms).toBeGreaterThanOrEqual(h.rttP50Ms);
  }
});
