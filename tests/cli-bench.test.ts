// `npm run bench` output pieces: the lossless check, the summary, the table, the HTML report, the
// progress bar, prompt files, mesh reports as runs; sampling options.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkLossless, formatTable, htmlReport, meshRun, progressBar, readPrompts, summarize, type BenchRecord, type BenchResults } from '../src/cli/bench-results.ts';
import { samplingFromArgs } from '../src/cli/sampling-args.ts';
import { parseArgs } from '../src/common/args.ts';
import type { GenerateMetrics, Mode } from '../src/speculative/scheduler.ts';
import type { MeshRunReport } from '../src/app/mesh-session.ts';

function metrics(o: Partial<GenerateMetrics>): GenerateMetrics {
  return {
    mode: 'pp', stages: 2, promptTokens: 4, committedTokens: 4, ttftMs: 100, tbtP50Ms: 50, tbtP95Ms: 60, totalMs: 250,
    steps: null, stepsToFirstToken: null, tokensPerStep: null, hits: 0, misses: 3, hitRate: null, boundTokensPerStep: null,
    boundSpeedupOverPp: null, levelsSent: 4, rowsSent: 4, staleResults: 0, epochs: 0, treeRounds: 0, tokensPerRound: null,
    draftCalls: 0, draftMs: 0, ...o,
  };
}

function record(mode: Mode, prompt: number, tokens: number[], o: Partial<BenchRecord> = {}): BenchRecord {
  return {
    mode, stages: mode === 'single' ? 1 : 2, prompt, tokens, metrics: metrics({ mode }), tokensPerSecond: 20, stepMs: 20, tokensPerStep: 0.4,
    stageBusyMs: [100, 100], transport: 'mesh', hopDelayMs: 0, lossless: null, ...o,
  };
}

describe('checkLossless', () => {
  it('compares every mode with single on the same prompt and names the first differing token', () => {
    const rs = [
      record('single', 0, [1, 2, 3]),
      record('single', 1, [4, 5]),
      record('pp', 0, [1, 2, 3]),
      record('specpipe', 0, [1, 9, 3]),
      record('tree', 1, [4]),
      record('pp', 2, [7]),
    ];
    const bad = checkLossless(rs);
    expect(rs.map((r) => r.lossless)).toEqual([true, true, true, false, false, null]);
    expect(bad).toEqual([
      'specpipe x2 (mesh, hop 0 ms) prompt 1: differs from single at token 1',
      'tree x2 (mesh, hop 0 ms) prompt 2: differs from single at token 1',
    ]);
  });
});

describe('summarize / formatTable', () => {
  const rs = [
    record('single', 0, [1, 2, 3]),
    record('single', 1, [6]),
    record('pp', 0, [1, 2, 3], { tokensPerSecond: 10, hopRttP50Ms: [2, 4], ringTripP50Ms: 30 }),
    record('specpipe', 0, [1, 2, 3], { tokensPerSecond: 25, metrics: metrics({ mode: 'specpipe', hits: 3, misses: 1 }) }),
    record('specpipe', 1, [5], { tokensPerSecond: 15, metrics: metrics({ mode: 'specpipe', hits: 1, misses: 1 }) }),
  ];
  checkLossless(rs);
  const rows = summarize(rs);
  it('groups by transport, stages, hop delay and mode, in a stable order', () => {
    expect(rows.map((r) => `${r.stages}:${r.mode}`)).toEqual(['1:single', '2:pp', '2:specpipe']);
  });
  it('pools the hit rate, gives its bound and the speedup over pp by mean time between tokens', () => {
    const sp = rows[2];
    expect(sp.hitRate).toBeCloseTo(4 / 6);
    expect(sp.boundTokensPerStep).toBeCloseTo(1 / (4 / 6 + (2 / 6) * 2));
    expect(sp.tbtMeanMs).toBeCloseTo((40 + 1000 / 15) / 2);
    expect(sp.speedupOverPp).toBeCloseTo(100 / sp.tbtMeanMs!);
    expect(sp.lossless).toBe('1/2');
    expect(sp.losslessFailures).toBe(1);
    expect(rows[1].hitRate).toBeNull();
    expect(rows[1].boundTokensPerStep).toBe(0.5);
    expect(rows[1].hopRttMs).toBe(3);
    expect(rows[1].ringTripMs).toBe(30);
    expect(rows[1].busyFraction).toBeCloseTo(100 / 250);
  });
  it('prints an aligned table', () => {
    const lines = formatTable(rows).split('\n');
    expect(lines).toHaveLength(5);
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
    expect(lines[0]).toContain('TBT mean ms');
    expect(lines[4]).toMatch(/\| specpipe .*\| 67% .*\| 1\/2 +\|$/);
  });
  it('writes a self-contained HTML report with charts and a loud lossless failure', () => {
    const res: BenchResults = {
      createdAt: '2026-11-26T00:00:00Z',
      conditions: { adapter: 'google swiftshader', cpu: 'test cpu', cores: 2, placement: 'mesh <test>', notes: ['shared cores'] },
      settings: { stages: [2], modes: ['single', 'pp', 'specpipe'], hopDelaysMs: [0], tokens: 3, width: 2, depth: 4, draft: 'model', prompts: ['a <b>', 'c'] },
      records: rs,
      mismatches: checkLossless(rs),
      failures: ['4 stages, hop delay 10 ms: stage 3 lost'],
    };
    const html = htmlReport(res);
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).not.toMatch(/<script|src="http/);
    expect(html.match(/<svg /g)).toHaveLength(3);
    expect(html).toContain('LOSSLESS CHECK FAILED');
    expect(html).toContain('1 configuration(s) failed');
    expect(html).toContain('stage 3 lost');
    expect(html).toContain('a &#60;b&#62;');
    expect(html).toContain('mesh &#60;test&#62;');
    expect(html).toContain('<tr class="bad">');
  });
});

describe('progressBar', () => {
  it('fills in proportion', () => {
    expect(progressBar(0, 4, 'x', 8)).toBe('[........] 0/4 x');
    expect(progressBar(2, 4, 'pp', 8)).toBe('[####....] 2/4 pp');
    expect(progressBar(12, 12, '', 4)).toBe('[####] 12/12 ');
  });
});

describe('readPrompts', () => {
  it('skips blank lines and comments, and refuses an empty file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'prompts-'));
    writeFileSync(join(dir, 'p.txt'), '# comment\n\n first \nsecond\n');
    expect(readPrompts(join(dir, 'p.txt'))).toEqual(['first', 'second']);
    writeFileSync(join(dir, 'e.txt'), '# nothing\n');
    expect(() => readPrompts(join(dir, 'e.txt'))).toThrow(/no prompts/);
  });
  it('reads the bundled prompts', () => {
    expect(readPrompts('bench/prompts.txt').length).toBeGreaterThanOrEqual(3);
  });
});

describe('meshRun', () => {
  it('takes the step time from the ring trip and the hops from the report', () => {
    const report = {
      tokens: [1, 2], metrics: metrics({ mode: 'pp' }), timings: { tokensPerSecond: 10 },
      stageStats: [
        { id: 'a', role: 'layers 0-3', packets: 10, rowsComputed: 10, rowsDropped: 0, busyMs: 100, busyFraction: 0.4 },
        { id: 'b', role: 'layers 4-7', packets: 10, rowsComputed: 10, rowsDropped: 0, busyMs: 300, busyFraction: 0.6 },
      ],
      hops: [{ from: 'leader', to: 'stage 1', rttP50Ms: 2, rttP95Ms: 3, samples: 5 }],
      ringTripP50Ms: 45,
    } as unknown as MeshRunReport;
    const r = meshRun(report, 'pp', 2, 0);
    expect(r.stepMs).toBe(22.5); // ring trip 45 ms over 2 stages
    expect(r.tokensPerStep).toBeCloseTo(0.225); // no step count from the scheduler: 10 tok/s x 22.5 ms
    expect(meshRun({ ...report, metrics: metrics({ tokensPerStep: 0.8 }) }, 'specpipe', 2, 0).tokensPerStep).toBe(0.8);
    expect(r.stageBusyMs).toEqual([100, 300]);
    expect(r.hopRttP50Ms).toEqual([2]);
    expect(r.ringTripP50Ms).toBe(45);
  });
});

describe('samplingFromArgs', () => {
  it('is greedy unless a temperature is given', () => {
    expect(samplingFromArgs(parseArgs(['--seed', '3']))).toEqual({ temperature: 0, topK: 0, topP: 1, seed: 3 });
    expect(samplingFromArgs(parseArgs(['--temperature', '0.8', '--top-p', '0.9']))).toEqual({ temperature: 0.8, topK: 0, topP: 0.9, seed: 0 });
  });
});
