// `npm run generate` as users and benchmarks call it: its own Vite server and headless Chromium.
import { test, expect } from '@playwright/test';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

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

test('generate --stage-ms emulates dedicated devices: same tokens, levels padded, overruns and the bound reported', async () => {
  const ref = JSON.parse(readFileSync('public/fixtures/tiny-llama/reference.json', 'utf8')) as { promptIds: number[]; greedyTokens: number[] };
  const out = await generate(['--model', 'public/fixtures/tiny-llama', '--prompt-ids', ref.promptIds.join(','), '--max-new-tokens', '8', '--mode', 'pp', '--local-stages', '2', '--stage-ms', '30', '--json']);
  expect(out.code, out.stderr).toBe(0);
  const r = JSON.parse(out.stdout.trim().split('\n').pop()!) as {
    tokens: number[];
    overrunShare: number;
    timings: { tbtMeanMs: number; tokensPerSecond: number; decodeMs: number };
    emulation: { stageMs: { fixedMs: number; perRowMs: number }; draftMs: null; stages: { levels: number; overruns: number }[]; representative: boolean };
    bound: { law: string; stepMs: number; hopMs: number; tbtMs: number; efficiency: number };
  };
  expect(r.tokens).toEqual(ref.greedyTokens.slice(0, 8));
  expect(r.emulation.stageMs).toEqual({ fixedMs: 30, perRowMs: 0 });
  expect(r.emulation.draftMs).toBeNull();
  expect(r.emulation.stages.map((s) => s.levels)).toEqual([8, 8]); // the prompt and one level per token but the last
  expect(r.overrunShare).toBeGreaterThanOrEqual(0);
  expect(r.overrunShare).toBeLessThanOrEqual(1);
  // pp through 2 stages of at least 30 ms each per token; tokens per second is the inverse of the mean.
  expect(r.timings.tbtMeanMs).toBeGreaterThanOrEqual(59);
  expect(r.timings.tokensPerSecond).toBeCloseTo(1000 / r.timings.tbtMeanMs, 6);
  expect(r.timings.decodeMs).toBeCloseTo(r.timings.tbtMeanMs * 7, 6);
  expect(r.bound.law).toBe('pipeline');
  expect(r.bound.stepMs).toBeGreaterThanOrEqual(29);
  expect(r.bound.hopMs).toBe(0);
  expect(r.bound.efficiency).toBeCloseTo(r.bound.tbtMs / r.timings.tbtMeanMs, 6);
  const text = await generate(['--model', 'public/fixtures/tiny-llama', '--prompt-ids', ref.promptIds.join(','), '--max-new-tokens', '4', '--mode', 'pp', '--local-stages', '2', '--stage-ms', '30']);
  expect(text.code, text.stderr).toBe(0);
  expect(text.stdout).toMatch(/mean TBT \d+\.\d ms, bound \d+\.\d ms \(pipeline: R; t \d+\.\d ms per level, h 0\.0 ms, S 2/);
  expect(text.stdout).toMatch(/emulated dedicated devices: stage 30 ms\/level, draft real; overruns \d+%/);
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
  const out = await generate(['--model', 'public/fixtures/tiny-llama', '--prompt-ids', ref.promptIds.join(','), '--max-new-tokens', '8', '--mode', 'pp', '--stages', '2', '--browsers', '2', '--hop-delay-ms', '5', '--split', 'equal', '--stage-ms', '20', '--json']);
  expect(out.code, out.stderr).toBe(0);
  const report = JSON.parse(out.stdout.trim().split('\n').pop()!) as {
    tokens: number[];
    stages: string[];
    hops: { from: string; to: string; rttP50Ms: number; rttP95Ms: number }[];
    emulation: { stageMs: { fixedMs: number }; stages: { levels: number; overruns: number }[] };
    bound: { stepMs: number; hopMs: number };
    overrunShare: number;
  };
  expect(report.tokens).toEqual(ref.greedyTokens.slice(0, 8));
  expect(report.stages).toEqual(['layers 0-1 + embedding', 'layers 2-2 + head']);
  expect(report.hops.map((h) => `${h.from}->${h.to}`)).toEqual(['leader->stage 1', 'stage 1->stage 2', 'stage 2->leader']);
  // 5 ms each way on every link.
  for (const h of report.hops) {
    expect(h.rttP50Ms).toBeGreaterThanOrEqual(10);
    expect(h.rttP95Ms).toBeGreaterThanOrEqual(h.rttP50Ms);
  }
  // The stage tabs got the emulated cost with their layers and report their levels and overruns.
  expect(report.emulation.stageMs.fixedMs).toBe(20);
  expect(report.emulation.stages.map((s) => s.levels)).toEqual([8, 8]);
  expect(report.overrunShare).toBeGreaterThanOrEqual(0);
  expect(report.bound.stepMs).toBeGreaterThanOrEqual(19);
  expect(report.bound.hopMs).toBeGreaterThanOrEqual(5); // half a round trip of 5 ms each way
});

test('generate --stage-hosts mixed --json: stage tabs and Node stage hosts alternate, same tokens, each stage\'s device and memory reported, no host left', async () => {
  const ref = JSON.parse(readFileSync('public/fixtures/tiny-llama/reference.json', 'utf8')) as { promptIds: number[]; greedyTokens: number[] };
  const out = await generate(['--model', 'public/fixtures/tiny-llama', '--prompt-ids', ref.promptIds.join(','), '--max-new-tokens', '8', '--mode', 'pp', '--stages', '2', '--stage-hosts', 'mixed', '--split', 'equal', '--json']);
  expect(out.code, out.stderr).toBe(0);
  const report = JSON.parse(out.stdout.trim().split('\n').pop()!) as {
    tokens: number[];
    stageHosts: string;
    ring: { name: string; role: string; device: string; weightBytes: number; kvBytes: number; memoryBytes: number | null }[];
  };
  expect(report.tokens).toEqual(ref.greedyTokens.slice(0, 8));
  expect(report.stageHosts).toBe('mixed');
  expect(report.ring.map((s) => s.name).sort()).toEqual(['node 2', 'stage 1']);
  for (const s of report.ring) {
    expect(s.device, s.name).toMatch(/swiftshader/i);
    expect(s.weightBytes, s.name).toBeGreaterThan(0);
    expect(s.memoryBytes, s.name).toBeNull(); // nothing announced
  }
  // KV pools per layer, whatever holds the stage: two layers hold twice one layer's.
  expect(report.ring.map((s) => s.role)).toEqual(['layers 0-1 + embedding', 'layers 2-2 + head']);
  expect(report.ring[1].kvBytes).toBeGreaterThan(0);
  expect(report.ring[0].kvBytes).toBe(2 * report.ring[1].kvBytes);
  // The Node stage host ended with the command.
  const hosts = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      return cmd.includes('src/cli/stage-host.ts') && cmd.includes('/?room=cli-');
    } catch {
      return false;
    }
  });
  expect(hosts).toEqual([]);
});
