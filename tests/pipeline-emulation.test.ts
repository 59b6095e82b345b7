// Emulated dedicated devices (src/common/device-emulation.ts through StageRunner): a level padded to
// A ms takes A ms and the padding costs no CPU, an overrun is counted when the real compute exceeds
// the budget, and pp vs specpipe over the in-tab pipeline with emulated step times shows the
// speed-up SpecPipe's bound predicts.
import { describe, expect, it } from 'vitest';
import { budgetMs, costText, emulationText, onEmulatedDevice, overrunShare, parseCost, type EmulationClock, type OverrunCount } from '../src/common/device-emulation.ts';
import { StageRunner, type StageCompute } from '../src/pipeline/stage-runner.ts';
import { LocalPipeline } from '../src/pipeline/local-pipeline.ts';
import type { LevelPacket } from '../src/pipeline/contract.ts';
import { generate, reservedSlots, type Mode } from '../src/speculative/scheduler.ts';
import { runBound } from '../src/app/generation.ts';
import { referenceGenerate } from './support/toy-lm.ts';
import { EOS, makeTarget, oracle, ToyStage } from './support/speculative-helpers.ts';

/** A clock that only moves when work or padding says so. */
function virtualClock(): EmulationClock & { t: number; slept: number[] } {
  const c = {
    t: 0,
    slept: [] as number[],
    now: () => c.t,
    sleep: async (ms: number) => {
      c.slept.push(ms);
      c.t += ms;
    },
  };
  return c;
}

describe('device emulation', () => {
  it('parses A and A:B (0 or empty: off) and refuses anything else', () => {
    expect(parseCost('50')).toEqual({ fixedMs: 50, perRowMs: 0 });
    expect(parseCost(' 50:2.5 ')).toEqual({ fixedMs: 50, perRowMs: 2.5 });
    expect(parseCost('0')).toBeNull();
    expect(parseCost('0:0')).toBeNull();
    expect(parseCost('')).toBeNull();
    for (const bad of ['x', '50:', ':3', '1:2:3', '-5', 'Infinity']) expect(() => parseCost(bad, '--stage-ms')).toThrow(/--stage-ms must be A or A:B/);
    expect(costText({ fixedMs: 50, perRowMs: 2 })).toBe('50:2');
    expect(costText(null)).toBe('0');
    expect(budgetMs({ fixedMs: 50, perRowMs: 2 }, 3)).toBe(56);
    expect(emulationText({ stageMs: { fixedMs: 50, perRowMs: 0 }, draftMs: { fixedMs: 10, perRowMs: 1 } })).toBe('emulated dedicated devices: stage 50 ms/level, draft 10 ms/call + 1 ms/row');
    expect(emulationText(null)).toMatch(/^no emulation/);
  });

  it('pads the real compute up to A + B*rows, and counts an overrun when the compute alone took longer', async () => {
    const clock = virtualClock();
    const count: OverrunCount = { levels: 0, overruns: 0 };
    const cost = { fixedMs: 50, perRowMs: 2 };
    const out = await onEmulatedDevice(cost, 3, count, async () => ((clock.t += 10), 'x'), clock);
    expect(out).toBe('x');
    expect(clock.slept).toEqual([46]);
    expect(clock.t).toBe(56);
    await onEmulatedDevice(cost, 3, count, async () => void (clock.t += 80), clock);
    expect(clock.slept).toEqual([46]); // an overrun is not padded
    expect(count).toEqual({ levels: 2, overruns: 1 });
    expect(overrunShare([count, { levels: 2, overruns: 0 }])).toBe(0.25);
    expect(overrunShare([])).toBeNull();
    // Without a cost: real time, counted, never an overrun.
    await onEmulatedDevice(null, 3, count, async () => void (clock.t += 500), clock);
    expect(count).toEqual({ levels: 3, overruns: 1 });
    expect(clock.slept).toHaveLength(1);
  });
});

const role = { layers: { start: 0, end: 1 }, embed: true, head: true };
const level = (step: number, rows: number): LevelPacket => ({
  request: 1, step, epoch: 0, verdict: null, hidden: null, logitsRows: [],
  rows: Array.from({ length: rows }, (_, i) => ({ node: step * 10 + i, token: 1, position: i, slot: step * 10 + i, ancestors: [], uniform: 0.5 })),
});
/** A compute that takes `ms` (a timer, like a GPU the CPU waits on). */
const computeTaking = (ms: number): StageCompute => ({
  forward: (b) => new Promise((resolve) => setTimeout(() => resolve({ tokens: new Int32Array(b.positions.length) }), ms)),
  kv: { commit: () => undefined, release: () => undefined },
});
async function runLevels(runner: StageRunner, levels: LevelPacket[]): Promise<number[]> {
  const done: number[] = [];
  const t0 = performance.now();
  const all = new Promise<void>((resolve) => {
    runner.onPacket = () => {
      done.push(performance.now() - t0);
      if (done.length === levels.length) resolve();
    };
  });
  for (const l of levels) runner.push(l);
  await all;
  return done;
}

describe('StageRunner on an emulated device', () => {
  it('a level padded to A ms takes about A ms, one after another, without burning CPU', async () => {
    const runner = new StageRunner(computeTaking(1), role, () => undefined, () => undefined, { cost: { fixedMs: 40, perRowMs: 0 } });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const ends = await runLevels(runner, [level(0, 1), level(1, 1), level(2, 3), level(3, 1), level(4, 1)]);
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    expect(ends[0]).toBeGreaterThanOrEqual(39);
    expect(ends[4]).toBeGreaterThanOrEqual(5 * 40 - 1); // the device computes one level at a time
    expect(ends[4]).toBeLessThan(5 * 40 + 150);
    const s = runner.stats;
    expect(s.levels).toBe(5);
    expect(s.overruns).toBe(0);
    expect(s.levelMsP50!).toBeGreaterThanOrEqual(39);
    expect(s.levelMsP50!).toBeLessThan(80);
    // A timer waits: the CPU was idle for most of the wall time.
    expect((cpu.user + cpu.system) / 1000).toBeLessThan(wall / 2);
  });

  it('charges B ms per row and counts levels whose real compute overran the budget', async () => {
    const perRow = new StageRunner(computeTaking(1), role, () => undefined, () => undefined, { cost: { fixedMs: 10, perRowMs: 10 } });
    const [one, four] = await runLevels(perRow, [level(0, 1), level(1, 4)]);
    expect(one).toBeGreaterThanOrEqual(19);
    expect(four - one).toBeGreaterThanOrEqual(49);
    const slow = new StageRunner(computeTaking(30), role, () => undefined, () => undefined, { cost: { fixedMs: 10, perRowMs: 0 } });
    await runLevels(slow, [level(0, 1), level(1, 1), level(2, 1)]);
    expect(slow.stats.levels).toBe(3);
    expect(slow.stats.overruns).toBe(3);
    expect(slow.stats.levelMsP50!).toBeGreaterThanOrEqual(29);
  });

  it('a level whose rows all die during its wait (a verdict arrives behind it) is cut short and passed on empty', async () => {
    const emitted: number[] = [];
    const runner = new StageRunner(computeTaking(1), role, (o) => 'result' in o && emitted.push(o.result.nodes.length), () => undefined, { cost: { fixedMs: 200, perRowMs: 0 } });
    const killer: LevelPacket = { ...level(1, 1), epoch: 1, verdict: { epoch: 1, commit: [], release: [] } };
    const t0 = performance.now();
    const ends = runLevels(runner, [level(0, 2), killer]);
    await new Promise((r) => setTimeout(r, 30)); // level 0 is in its padding now
    runner.push({ ...level(2, 1), epoch: 1, verdict: { epoch: 1, commit: [], release: [] } });
    const [first] = await ends;
    expect(first).toBeLessThan(150); // not its 200 ms budget
    expect(performance.now() - t0).toBeGreaterThanOrEqual(200); // the live level after it still takes its budget
    expect(emitted.slice(0, 2)).toEqual([0, 1]);
    expect(runner.stats.cancelled).toBe(1);
    // A level with a live row runs to its budget.
    const partly = new StageRunner(computeTaking(1), role, () => undefined, () => undefined, { cost: { fixedMs: 80, perRowMs: 0 } });
    const p0 = runLevels(partly, [level(0, 2)]);
    partly.push({ ...level(1, 1), verdict: { epoch: 0, commit: [], release: [0] } }); // slot 0 dies, slot 1 lives
    expect((await p0)[0]).toBeGreaterThanOrEqual(79);
    expect(partly.stats.cancelled).toBe(0);
  });

  it('without a cost a level takes its real time and nothing overruns', async () => {
    const real = new StageRunner(computeTaking(5), role, () => undefined);
    await runLevels(real, [level(0, 1), level(1, 1)]);
    expect(real.stats).toMatchObject({ levels: 2, overruns: 0 });
  });
});

describe('pp vs specpipe with emulated step times (in-tab pipeline, toy stages)', () => {
  const target = makeTarget(41, -50);
  const sampling = { temperature: 0.8, topK: 30, topP: 0.95, seed: 77 };
  const prompt = [3, 14, 15, 9, 26];
  const S = 4;
  const T = 25; // ms per level on every stage
  const N = 14;

  async function run(mode: Mode) {
    const stages = Array.from({ length: S }, (_, i) => new ToyStage(i, i === S - 1, target));
    const pipe = new LocalPipeline(
      stages.map((compute, i) => ({ compute, role: { layers: { start: i, end: i + 1 }, embed: i === 0, head: i === S - 1 }, cost: { fixedMs: T, perRowMs: 0 } })),
      prompt.length + N + reservedSlots(mode, S, { width: 1 }),
    );
    const res = await generate(pipe, { mode, prompt, maxNewTokens: N, sampling, eosTokens: [EOS], source: mode === 'pp' ? null : oracle(target, sampling, 0.7, 3, 0), width: 1 });
    await pipe.drained();
    return { res, stats: pipe.stats };
  }

  it('pp takes S levels per token; specpipe overlaps the stages\' padding and approaches p t + (1-p) S t', async () => {
    const ref = referenceGenerate(target, prompt, N, sampling, [EOS]);
    const pp = await run('pp');
    const sp = await run('specpipe');
    expect(pp.res.tokens).toEqual(ref.tokens);
    expect(sp.res.tokens).toEqual(ref.tokens);
    const ppTbt = pp.res.metrics.tbtMeanMs!;
    const spTbt = sp.res.metrics.tbtMeanMs!;
    expect(ppTbt).toBeGreaterThanOrEqual(S * T - 1);
    expect(ppTbt).toBeLessThan(S * T * 1.5);
    const p = sp.res.metrics.hitRate!;
    expect(p).toBeGreaterThan(0.4); // misses too: each costs a full trip
    expect(p).toBeLessThan(1);
    const bound = runBound(sp.res.metrics, T, 0)!;
    console.log(`emulated ${T} ms per level, S=${S}: pp ${ppTbt.toFixed(1)} ms, specpipe ${spTbt.toFixed(1)} ms between tokens (p ${p.toFixed(2)}, bound ${bound.tbtMs.toFixed(1)} ms)`);
    expect(bound.tbtMs).toBeCloseTo(p * T + (1 - p) * S * T, 9);
    // The speed-up's shape: specpipe is clearly faster than pp and not faster than its bound allows.
    const speedup = ppTbt / spTbt;
    expect(speedup).toBeGreaterThan(1.3);
    expect(spTbt).toBeGreaterThanOrEqual(bound.tbtMs * 0.97); // nothing beats the law (timers may fire a hair early)
    expect(bound.efficiency!).toBeGreaterThan(0.75);
    for (const s of [...pp.stats, ...sp.stats]) expect(s.overruns / s.levels).toBeLessThanOrEqual(0.1);
  });
});
