import { describe, it, expect } from 'vitest';
import { SimPipeline } from './support/sim-pipeline.ts';
import { Wakeup, type LevelPacket, type ResultPacket, type RowMeta, type Verdict } from '../src/pipeline/contract.ts';
import { makeTarget } from './support/speculative-helpers.ts';

const row = (node: number, token: number, position: number, slot: number, ancestors: number[] = []): RowMeta => ({ node, token, position, slot, ancestors, uniform: 0.5 });
const level = (step: number, rows: RowMeta[], verdict: Verdict | null = null, epoch = verdict?.epoch ?? 0): LevelPacket => ({ request: 1, step, epoch, verdict, rows, hidden: null, logitsRows: [] });

async function sim(S: number, opts: { strict?: boolean; stage1Queue?: number } = {}) {
  const p = new SimPipeline({ numStages: S, numSlots: 32, target: makeTarget(1), ...opts });
  await p.begin({ request: 1, temperature: 0, topK: 0, topP: 1 });
  const results: ResultPacket[] = [];
  p.onResult((r) => results.push(r));
  return { p, results };
}

describe('SimPipeline', () => {
  it('moves a level one stage per step and returns one result per level', async () => {
    const { p, results } = await sim(3);
    p.send(level(0, [row(0, 5, 0, 0), row(1, 6, 1, 1, [0])]));
    expect(p.credit()).toBe(0);
    p.tick();
    expect(p.credit()).toBe(1);
    p.send(level(1, []));
    p.tick();
    expect(results).toHaveLength(0);
    p.tick();
    expect(results).toHaveLength(1);
    expect(results[0].nodes).toEqual([0, 1]);
    p.tick();
    expect(results).toHaveLength(2);
    expect(results[1].nodes).toEqual([]);
    expect(p.stepCount()).toBe(4);
  });

  it('computes the target token from the prefix its own KV holds', async () => {
    const t = makeTarget(1);
    const { p, results } = await sim(2);
    p.send(level(0, [row(0, 5, 0, 3), row(1, 6, 1, 7, [3])]));
    p.tick();
    p.send(level(1, [row(2, 9, 2, 4, [7])], { epoch: 0, commit: [3], release: [] }));
    p.drain();
    const argmax = (l: Float32Array) => l.indexOf(Math.max(...l));
    expect(results[0].tokens).toEqual([argmax(t([5])), argmax(t([5, 6]))]);
    expect(results[1].tokens).toEqual([argmax(t([5, 6, 9]))]);
    expect(p.stageKv(1, 1).committed).toEqual([3]);
  });

  it('catches broken invariants', async () => {
    const cases: [string, LevelPacket[]][] = [
      ['not written or freed', [level(0, [row(0, 5, 1, 1, [0])])]],
      ['position', [level(0, [row(0, 5, 3, 0)])]],
      ['commit of unwritten slot', [level(0, [], { epoch: 0, commit: [4], release: [] })]],
      ['without a release', [level(0, [row(0, 5, 0, 0)]), level(1, [row(1, 5, 0, 0)])]],
      ['overwrites a committed slot', [level(0, [row(0, 5, 0, 0)]), level(1, [row(1, 6, 1, 0)], { epoch: 0, commit: [0], release: [] })]],
      ['is committed', [level(0, [row(0, 5, 0, 0)]), level(1, [row(1, 6, 1, 1, [0])], { epoch: 0, commit: [0], release: [] })]],
      ['release of committed slot', [level(0, [row(0, 5, 0, 0)]), level(1, [], { epoch: 0, commit: [0], release: [] }), level(2, [], { epoch: 0, commit: [], release: [0] })]],
      ['epoch', [level(0, [], { epoch: 2, commit: [], release: [] }), level(1, [], { epoch: 1, commit: [], release: [] })]],
      ['freed', [level(0, [row(0, 5, 0, 0)]), level(1, [], { epoch: 0, commit: [], release: [0] }), level(2, [row(1, 6, 1, 1, [0])])]],
    ];
    for (const [msg, pkts] of cases) {
      const { p } = await sim(2);
      expect(() => {
        for (const pkt of pkts) {
          p.send(pkt);
          p.tick();
        }
        p.drain();
      }, msg).toThrow(msg);
    }
  });

  it('drops rows killed by a verdict queued behind them (release or new epoch)', async () => {
    const { p, results } = await sim(2, { stage1Queue: 4 });
    p.send(level(0, [row(0, 5, 0, 0)]));
    p.tick(); // stage 1 computes the root before the rest queues up
    p.send(level(1, [row(1, 6, 1, 1, [0]), row(2, 7, 1, 2, [0])]));
    p.send(level(2, [row(3, 8, 2, 3, [0, 1])], { epoch: 0, commit: [], release: [2] }));
    p.send(level(3, [row(4, 9, 1, 1)], { epoch: 1, commit: [0], release: [1, 3] }));
    p.drain();
    // level 1: node 2 is released by level 2's verdict and the whole level is of epoch 0 while
    // level 3 (epoch 1) is queued; level 2 likewise: all three rows die at stage 1
    expect(results.map((r) => r.nodes)).toEqual([[0], [], [], [4]]);
    expect(p.stats.rowsDropped).toBe(3);
    const kv = p.stageKv(1, 1);
    expect(kv.committed).toEqual([0]);
    expect([...kv.written.keys()].sort()).toEqual([0, 1]);
  });
});

describe('Wakeup', () => {
  it('latches a notify that came before the wait, and wakes a waiter', async () => {
    const w = new Wakeup();
    w.notify();
    await w.wait();
    let woke = false;
    const pr = w.wait().then(() => (woke = true));
    await Promise.resolve();
    expect(woke).toBe(false);
    w.notify();
    await pr;
    expect(woke).toBe(true);
    const ctl = new AbortController();
    const pa = w.wait(ctl.signal);
    ctl.abort();
    await pa;
  });
});
