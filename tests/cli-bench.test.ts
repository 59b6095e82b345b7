// `npm run bench` output pieces: the lossless check, the summary, the table, the HTML report, the
// progress bar, prompt files, mesh reports as runs; sampling options.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchRecord, checkLossless, comparedRuns, formatTable, htmlReport, overran, progressBar, readPrompts, summarize, type BenchRecord, type BenchResults } from '../src/cli/bench-results.ts';
import { samplingFromArgs } from '../src/cli/sampling-args.ts';
import { emulationFromArgs, emulationsFromArgs } from '../src/cli/emulation-args.ts';
import { parseArgs } from '../src/common/args.ts';
import type { GenerateMetrics, Mode } from '../src/speculative/scheduler.ts';
import type { MeshRunReport } from '../src/app/mesh-types.ts';
import { modeVariants, variantLabel } from '../src/app/modes.ts';

function metrics(o: Partial<GenerateMetrics>): GenerateMetrics {
  return {
    mode: 'pp', stages: 2, promptTokens: 4, committedTokens: 4, ttftMs: 100, decodeMs: 150, tbtMeanMs: 50, tbtP50Ms: 50, tbtP95Ms: 60, totalMs: 250,
    steps: null, stepsToFirstToken: null, tokensPerStep: null, hits: 0, misses: 3, hitRate: null, boundTokensPerStep: null,
    boundSpeedupOverPp: null, levelsSent: 4, rowsSent: 4, staleResults: 0, epochs: 0, treeRounds: 0, tokensPerRound: null,
    draftCalls: 0, draftMs: 0, draftWaitMs: 0, draftWaitPerLevelMs: null, ...o,
  };
}

/** A run of `tokens` whose decode took `tbt` ms per gap. */
function record(mode: Mode, prompt: number, tokens: number[], o: Partial<BenchRecord> & { tbt?: number; m?: Partial<GenerateMetrics> } = {}): BenchRecord {
  const { tbt = 50, m = {}, ...rest } = o;
  const decodeMs = tokens.length > 1 ? tbt * (tokens.length - 1) : null;
  return {
    transport: 'mesh', stages: mode === 'single' ? 1 : 2, hopDelayMs: 0, stageMs: null, draftMs: null, mode, prompt, tokens,
    width: mode === 'specpipe' || mode === 'tree' ? 2 : null, depth: mode === 'tree' ? 4 : null,
    metrics: metrics({ mode, decodeMs, tbtMeanMs: decodeMs === null ? null : tbt, ...m }), tokensPerSecond: 1000 / tbt, stageStepMs: 20, hopMs: 0,
    stageBusyMs: [100, 100], overruns: null, lossless: null, ...rest,
  };
}

describe('checkLossless', () => {
  it('compares every other mode with single on the same prompt; single is the reference, not lossless against itself', () => {
    const rs = [
      record('single', 0, [1, 2, 3]),
      record('single', 1, [4, 5]),
      record('pp', 0, [1, 2, 3]),
      record('specpipe', 0, [1, 9, 3]),
      record('tree', 1, [4]),
      record('pp', 2, [7]),
    ];
    const bad = checkLossless(rs);
    expect(rs.map((r) => r.lossless)).toEqual([null, null, true, false, false, null]);
    expect(bad).toEqual([
      'specpipe W2 x2 (mesh, hop 0 ms) prompt 1: differs from single at token 1',
      'tree W2 D4 x2 (mesh, hop 0 ms) prompt 2: differs from single at token 1',
    ]);
    expect(comparedRuns(rs)).toBe(3);
  });
  it('counts nothing compared when single is missing or alone', () => {
    const alone = [record('single', 0, [1, 2])];
    expect(checkLossless(alone)).toEqual([]);
    expect(comparedRuns(alone)).toBe(0);
    const noSingle = [record('pp', 0, [1, 2]), record('specpipe', 0, [1, 2])];
    expect(checkLossless(noSingle)).toEqual([]);
    expect(comparedRuns(noSingle)).toBe(0);
  });
});

describe('summarize / formatTable', () => {
  // Mesh, 2 stages: pp 100 ms between tokens (its step: 100 / 2 = 50 ms), t = 40 ms per level, h = 5 ms.
  const rs = [
    record('single', 0, [1, 2, 3], { tbt: 30, stageStepMs: 30 }),
    record('single', 1, [6], { tbt: 30, stageStepMs: 30 }),
    record('pp', 0, [1, 2, 3], { tbt: 100, stageStepMs: 40, hopMs: 5, hopRttP50Ms: [10, 10, 10], ringTripP50Ms: 95 }),
    record('specpipe', 0, [1, 2, 3], { tbt: 40, stageStepMs: 45, hopMs: 5, m: { hits: 3, misses: 1 } }),
    record('specpipe', 1, [5, 6, 7, 8, 9], { tbt: 60, stageStepMs: 45, hopMs: 5, m: { hits: 1, misses: 1 } }),
    record('tree', 0, [1, 2, 3], { tbt: 50, stageStepMs: 60, hopMs: 5, m: { committedTokens: 4, treeRounds: 2, hits: 2, misses: 1 } }),
  ];
  checkLossless(rs);
  const rows = summarize(rs);
  const row = (mode: Mode) => rows.find((r) => r.mode === mode)!;
  it('groups by configuration and mode, in a stable order', () => {
    expect(rows.map((r) => `${r.stages}:${r.mode}`)).toEqual(['1:single', '2:pp', '2:tree', '2:specpipe']);
  });
  it('pools mean TBT over prompts: all decode time over all gaps', () => {
    expect(row('specpipe').tbtMeanMs).toBeCloseTo((2 * 40 + 4 * 60) / 6);
    expect(row('specpipe').tokensPerSecond).toBeCloseTo(1000 / row('specpipe').tbtMeanMs!);
  });
  it("measures every mode against pp's step and bound inputs (t, h) of the same configuration", () => {
    const sp = row('specpipe');
    const p = 4 / 6;
    expect(sp.hitRate).toBeCloseTo(p);
    expect(sp.stepMs).toBe(50); // pp's TBT over S on the ring
    expect(row('pp').tokensPerStep).toBeCloseTo(0.5);
    expect(sp.tokensPerStep).toBeCloseTo(50 / sp.tbtMeanMs!);
    expect(sp.boundTokensPerStep).toBeCloseTo(1 / (p + (1 - p) * 2));
    const R = 2 * 40 + 3 * 5; // pp's t and h, not specpipe's own 45 ms
    expect(sp.boundTbtMs).toBeCloseTo(p * 40 + (1 - p) * R);
    expect(sp.efficiency).toBeCloseTo(sp.boundTbtMs! / sp.tbtMeanMs!);
    expect(row('pp').boundTbtMs).toBe(R);
    expect(row('pp').efficiency).toBeCloseTo(R / 100);
    expect(sp.speedupOverPp).toBeCloseTo(100 / sp.tbtMeanMs!);
  });
  it('gives tree its own bound (round trip / tokens per round) and no SpecPipe bound', () => {
    expect(row('tree').boundTokensPerStep).toBeNull();
    expect(row('tree').boundTbtMs).toBeCloseTo((2 * 40 + 3 * 5) / 2);
  });
  it('shows single as the reference, with its own step', () => {
    expect(row('single').lossless).toBe('reference');
    expect(row('single').speedupOverPp).toBeNull();
    expect(row('single').stepMs).toBe(30);
    expect(row('single').boundTbtMs).toBe(30);
    expect(row('specpipe').lossless).toBe('1/2'); // prompt 2 differs from single
    expect(row('pp').hopRttMs).toBe(10);
    expect(row('pp').ringTripMs).toBe(95);
    expect(row('pp').busyFraction).toBeCloseTo(100 / 250);
  });
  it('a mode whose steps got slower loses tokens per step and efficiency (the reference does not move)', () => {
    const slower = summarize(rs.map((r) => (r.mode === 'specpipe' ? { ...r, stageStepMs: 90, metrics: { ...r.metrics, decodeMs: r.metrics.decodeMs! * 2 } } : r)));
    const sp = slower.find((r) => r.mode === 'specpipe')!;
    expect(sp.boundTbtMs).toBeCloseTo(row('specpipe').boundTbtMs!);
    expect(sp.efficiency).toBeCloseTo(row('specpipe').efficiency! / 2);
    expect(sp.tokensPerStep).toBeCloseTo(row('specpipe').tokensPerStep! / 2);
  });
  it('in one tab the reference step is pp\'s time per level', () => {
    const local = summarize(rs.map((r) => ({ ...r, transport: 'local' as const, hopMs: 0 })));
    expect(local.find((r) => r.mode === 'specpipe')!.stepMs).toBe(40);
    expect(local.find((r) => r.mode === 'pp')!.boundTbtMs).toBe(80);
  });
  it('keeps emulated configurations apart and flags more than 5% overruns', () => {
    const emu = { stageMs: { fixedMs: 50, perRowMs: 0 }, draftMs: null };
    const mixed = summarize([
      ...rs,
      record('pp', 0, [1, 2, 3], { ...emu, tbt: 210, overruns: { levels: 100, overruns: 2 } }),
      record('specpipe', 0, [1, 2, 3], { ...emu, tbt: 90, overruns: { levels: 100, overruns: 9 } }),
    ]);
    const e = mixed.filter((r) => r.stageMs !== null);
    expect(e.map((r) => r.mode)).toEqual(['pp', 'specpipe']);
    expect(e[1].speedupOverPp).toBeCloseTo(210 / 90);
    expect(e.map((r) => r.overrunShare)).toEqual([0.02, 0.09]);
    expect(e.map(overran)).toEqual([false, true]);
    expect(formatTable(mixed)).toMatch(/\| 9% ! +\|/);
  });
  it('prints an aligned table', () => {
    const lines = formatTable(rows).split('\n');
    expect(lines).toHaveLength(6);
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
    expect(lines[0]).toContain('TBT mean ms');
    expect(lines[0]).toContain('efficiency');
    expect(lines[2]).toMatch(/\| single .*\| reference +\|$/);
    expect(lines[5]).toMatch(/\| specpipe .*\| 67% .*\| 1\/2 +\|$/);
  });
  it('writes a self-contained HTML report with charts and a loud lossless failure', () => {
    const bad = [...rs, record('pp', 1, [6, 7])];
    const res: BenchResults = {
      createdAt: '2026-11-26T00:00:00Z',
      conditions: { adapter: 'google swiftshader', cpu: 'test cpu', cores: 2, placement: 'mesh <test>', notes: ['shared cores'] },
      settings: { stages: [2], modes: ['single', 'pp', 'specpipe'], hopDelaysMs: [0], stageMs: ['0'], draftMs: ['0'], tokens: 3, widths: [2], depths: [4], branchRatio: 0, draft: 'model', prompts: ['a <b>', 'c'] },
      records: bad,
      mismatches: checkLossless(bad),
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
    expect(html).toContain('Speed-up over pp vs the bound');
  });
  it('says so when nothing was compared', () => {
    const only = [record('single', 0, [1, 2])];
    const res: BenchResults = {
      createdAt: '2026-11-26T00:00:00Z', conditions: { adapter: 'a', cpu: 'c', cores: 2, placement: 'p', notes: [] },
      settings: { stages: [2], modes: ['single', 'pp'], hopDelaysMs: [0], stageMs: ['0'], draftMs: ['0'], tokens: 2, widths: [2], depths: [4], branchRatio: 0, draft: 'model', prompts: ['a'] },
      records: only, mismatches: checkLossless(only), failures: ['2 stages, hop delay 0 ms: no stage joined'],
    };
    expect(htmlReport(res)).toContain('NOTHING WAS COMPARED');
  });
});

describe('the bench grid: widths and depths', () => {
  it('runs specpipe once per width, tree once per width and depth, pp and single once', () => {
    const v = modeVariants(['single', 'pp', 'tree', 'specpipe'], [1, 3], [4, 8]);
    expect(v.map(variantLabel)).toEqual(['single', 'pp', 'tree W1 D4', 'tree W1 D8', 'tree W3 D4', 'tree W3 D8', 'specpipe W1', 'specpipe W3']);
  });
  it('keeps variants apart, measures each against the one pp, and gives specpipe its ratio to the best tree', () => {
    const grid = [
      record('single', 0, [1, 2, 3], { tbt: 40 }),
      record('pp', 0, [1, 2, 3], { tbt: 200 }),
      record('tree', 0, [1, 2, 3], { tbt: 150, width: 2, depth: 4 }),
      record('tree', 0, [1, 2, 3], { tbt: 120, width: 2, depth: 8 }),
      record('specpipe', 0, [1, 2, 3], { tbt: 80, width: 1 }),
      record('specpipe', 0, [1, 2, 3], { tbt: 60, width: 3 }),
    ];
    checkLossless(grid);
    const rows = summarize(grid);
    expect(rows.map(variantLabel)).toEqual(['single', 'pp', 'tree W2 D4', 'tree W2 D8', 'specpipe W1', 'specpipe W3']);
    expect(rows.map((r) => r.speedupOverPp)).toEqual([null, 1, 200 / 150, 200 / 120, 200 / 80, 200 / 60]);
    expect(rows.map((r) => r.speedupOverTree)).toEqual([null, null, null, null, 120 / 80, 120 / 60]);
    expect(formatTable(rows)).toMatch(/\| specpipe W3 .*\| 3\.33x +\| 2\.00x +\| 1\/1 +\|$/m);
    const html = htmlReport({
      createdAt: 'now', conditions: { adapter: 'a', cpu: 'c', cores: 2, placement: 'p', notes: [] },
      settings: { stages: [2], modes: ['single', 'pp', 'tree', 'specpipe'], hopDelaysMs: [0], stageMs: ['0'], draftMs: ['0'], tokens: 3, widths: [1, 3], depths: [4, 8], branchRatio: 0, draft: 'model', prompts: ['a'] },
      records: grid, mismatches: [], failures: [],
    });
    expect(html).toContain('specpipe W3 2 stages: 3.333'); // the speed-up bar of each variant, with its title
  });
});

describe('benchRecord', () => {
  it('takes t and h from the report\'s bound, the hops and ring trip from a mesh report, overruns from the emulation', () => {
    const report = {
      tokens: [1, 2], metrics: metrics({ mode: 'pp' }), timings: { tokensPerSecond: 10 },
      bound: { law: 'pipeline', stages: 2, stepMs: 22.5, hopMs: 3, roundTripMs: 54, hitRate: null, tokensPerRound: null, tbtMs: 54, efficiency: 0.5 },
      emulation: {
        stageMs: { fixedMs: 20, perRowMs: 0 }, draftMs: { fixedMs: 5, perRowMs: 0 }, overrunShare: 0.1, representative: false,
        stages: [{ levels: 10, overruns: 1, share: 0.1 }, { levels: 10, overruns: 0, share: 0 }], draft: { levels: 20, overruns: 3, share: 0.15 },
      },
      stageBusyMs: [100, 300],
      hops: [{ from: 'leader', to: 'stage 1', rttP50Ms: 2, rttP95Ms: 3, samples: 5 }],
      ringTripP50Ms: 45,
    } as unknown as MeshRunReport;
    const r = benchRecord(report, { transport: 'mesh', stages: 2, hopDelayMs: 0, stageMs: null, draftMs: null, mode: 'pp', width: null, depth: null, prompt: 0 });
    expect(r.stageStepMs).toBe(22.5);
    expect(r.hopMs).toBe(3);
    expect(r.tokensPerSecond).toBe(10);
    expect(r.overruns).toEqual({ levels: 40, overruns: 4 });
    expect(r.stageBusyMs).toEqual([100, 300]);
    expect(r.hopRttP50Ms).toEqual([2]);
    expect(r.ringTripP50Ms).toBe(45);
    const local = benchRecord({ ...report, bound: null, emulation: null, hops: undefined }, { transport: 'local', stages: 2, hopDelayMs: 0, stageMs: null, draftMs: null, mode: 'pp', width: null, depth: null, prompt: 0 });
    expect([local.stageStepMs, local.hopMs, local.overruns, local.hopRttP50Ms]).toEqual([null, 0, null, undefined]);
  });
});

describe('emulation arguments', () => {
  it('are off unless given; the bench takes lists and runs every combination', () => {
    expect(emulationFromArgs(parseArgs([]))).toBeNull();
    expect(emulationFromArgs(parseArgs(['--stage-ms', '0']))).toBeNull();
    expect(emulationFromArgs(parseArgs(['--stage-ms', '50', '--draft-ms', '10:1']))).toEqual({ stageMs: { fixedMs: 50, perRowMs: 0 }, draftMs: { fixedMs: 10, perRowMs: 1 } });
    expect(() => emulationFromArgs(parseArgs(['--stage-ms', '0,50']))).toThrow(/one value/);
    expect(() => emulationFromArgs(parseArgs(['--stage-ms', 'fast']))).toThrow(/--stage-ms must be A or A:B/);
    expect(emulationsFromArgs(parseArgs(['--stage-ms', '0,50', '--draft-ms', '0,10'])).map((e) => [e.stageMs?.fixedMs ?? 0, e.draftMs?.fixedMs ?? 0])).toEqual([[0, 0], [0, 10], [50, 0], [50, 10]]);
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

describe('samplingFromArgs', () => {
  it('is greedy unless a temperature is given', () => {
    expect(samplingFromArgs(parseArgs(['--seed', '3']))).toEqual({ temperature: 0, topK: 0, topP: 1, seed: 3 });
    expect(samplingFromArgs(parseArgs(['--temperature', '0.8', '--top-p', '0.9']))).toEqual({ temperature: 0.8, topK: 0, topP: 0.9, seed: 0 });
  });
});
