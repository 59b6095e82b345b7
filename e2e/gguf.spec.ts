// `npm run generate -- --model FILE.gguf` on the bundled target written as GGUF by tools/gguf
// (numpy, from the GGUF spec): F16 gives the safetensors model's greedy tokens and logits; Q8_0 and
// Q4_0 give exactly what --quant q8_0 / q4_0 gives on the safetensors model (the blocks are the same);
// and wllama (llama.cpp in WebAssembly) runs the same files to the same greedy tokens, which checks
// the writer's conventions (names, metadata, q/k permutation, blocks) against llama.cpp itself.
import { test, expect } from '@playwright/test';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPageHost } from '../src/cli/page-host.ts';
import type { PeerRunRequest, PeerRunResult } from '../src/headless/peers-run.ts';

interface Report {
  tokens: number[];
  promptIds: number[];
  text: string;
  logits: number[][];
  weightBytes: number;
  warnings: string[];
}

function generate(args: string[]): Promise<Report> {
  const common = ['--prompt', 'Once upon a time, the little', '--greedy', '--max-new-tokens', '16', '--dump-logits', '2', '--json'];
  return new Promise((resolve, reject) => {
    execFile('npx', ['tsx', 'src/cli/generate.ts', ...args, ...common], { timeout: 240_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`generate ${args.join(' ')}: ${stderr}`)) : resolve(JSON.parse(stdout.trim().split('\n').pop() as string) as Report),
    );
  });
}

const TARGET = 'public/models/demo-target';
const TYPES = ['f16', 'q8_0', 'q4_0'] as const;
let dir = '';
/** This project's greedy run of each file (the first test), for the wllama comparison. */
const ours = new Map<string, Report>();

test.describe.configure({ mode: 'serial' });

test.beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gguf-e2e-'));
  for (const type of TYPES) {
    execFileSync('/usr/bin/python3', ['tools/gguf/write_gguf.py', TARGET, join(dir, `demo-target-${type}.gguf`), '--type', type], { stdio: 'pipe', timeout: 120_000 });
  }
});

test('a GGUF file of the bundled target: F16 = safetensors, Q8_0 / Q4_0 = --quant on the safetensors', async () => {
  test.setTimeout(600_000);
  const f16 = await generate(['--model', TARGET]);
  const gguf = await generate(['--model', join(dir, 'demo-target-f16.gguf')]);
  ours.set('f16', gguf);
  expect(gguf.tokens).toEqual(f16.tokens);
  expect(gguf.text).toBe(f16.text);
  expect(gguf.logits).toEqual(f16.logits);
  expect(gguf.weightBytes).toBe(f16.weightBytes);
  for (const quant of ['q8_0', 'q4_0']) {
    const want = await generate(['--model', TARGET, '--quant', quant]);
    const got = await generate(['--model', join(dir, `demo-target-${quant}.gguf`)]);
    ours.set(quant, got);
    expect(got.tokens, quant).toEqual(want.tokens);
    expect(got.logits, quant).toEqual(want.logits);
    expect(got.weightBytes, quant).toBe(want.weightBytes);
    expect(got.weightBytes, quant).toBeLessThan(f16.weightBytes);
  }
});

test('wllama (llama.cpp) decodes the same files to the same 16 greedy tokens', async () => {
  test.setTimeout(300_000);
  expect([...ours.keys()].sort()).toEqual([...TYPES].sort());
  const host = await startPageHost({ models: TYPES.map((t) => join(dir, `demo-target-${t}.gguf`)) });
  try {
    for (const [i, type] of TYPES.entries()) {
      const want = ours.get(type) as Report;
      const page = await host.newPage();
      await page.goto(`${host.baseUrl}/src/headless/page.html`);
      const req: PeerRunRequest = { engine: { kind: 'wllama', ggufUrl: host.modelUrls[i], threads: 1 }, promptIds: want.promptIds, newTokens: want.tokens.length };
      const got = (await page.evaluate(async (q) => {
        const path = '/src/headless/peers-run.ts';
        const m = (await import(/* @vite-ignore */ path)) as typeof import('../src/headless/peers-run.ts');
        return m.runPeer(q);
      }, req)) as PeerRunResult;
      await page.close();
      expect(got.tokens, `${type}: ${got.ran}`).toEqual(want.tokens);
    }
  } finally {
    await host.close();
  }
});

test('the tokenizer built from tokenizer.ggml.* splits text as llama.cpp does, for each supported pre-tokenizer', async () => {
  test.setTimeout(300_000);
  const pres = ['gpt-2', 'llama-bpe', 'qwen2'];
  for (const pre of pres) {
    execFileSync('/usr/bin/python3', ['tools/gguf/write_gguf.py', TARGET, join(dir, `tok-${pre}.gguf`), '--type', 'q4_0', '--tokenizer-pre', pre], { stdio: 'pipe', timeout: 120_000 });
  }
  const texts = [
    "The whale's jaw; it's 1851 -- THE WHALE'S, I'LL, we'd",
    'Numbers 1 12 123 1234 12345678 3.14159 and 2,000,000',
    'Lines\n\nand   spaces \t tabs  \n  end  ',
    'Unicode: café naïve Ærø 東京 😀 — “quotes”',
    'Special <|endoftext|> token in text',
  ];
  const host = await startPageHost({ models: pres.map((p) => join(dir, `tok-${p}.gguf`)) });
  const numbers = new Set<string>();
  try {
    for (const [i, pre] of pres.entries()) {
      const page = await host.newPage();
      await page.goto(`${host.baseUrl}/e2e/harness.html`);
      const got = await page.evaluate(async (arg) => {
        const path = '/e2e/pages/gguf-tokenizer.ts';
        const m = (await import(/* @vite-ignore */ path)) as typeof import('./pages/gguf-tokenizer.ts');
        return m.tokenizeBoth(arg);
      }, { ggufUrl: host.modelUrls[i], texts });
      await page.close();
      texts.forEach((t, k) => expect(got.ours[k], `${pre}: ${JSON.stringify(t)}`).toEqual(got.llama[k]));
      numbers.add(JSON.stringify(got.ours[1]));
    }
    // The pre-tokenizers split digits differently (runs, 3 at a time, one at a time): the check bites.
    expect(numbers.size).toBe(3);
  } finally {
    await host.close();
  }
});
