import { describe, it, expect } from 'vitest';
import { StageRunner, type StageCompute } from '../src/pipeline/stage-runner.ts';
import type { LevelPacket, RowMeta } from '../src/pipeline/contract.ts';
import type { RowBatch } from '../src/gpu/types.ts';
import type { StageRole } from '../src/model/types.ts';

const role = (embed: boolean, head: boolean): StageRole => ({ layers: { start: 0, end: 1 }, embed, head });

function fakeCompute(log: string[], opts: { hasHead: boolean }): StageCompute & { gate: Promise<void> | null } {
  return {
    gate: null,
    async forward(b: RowBatch) {
      if (this.gate) await this.gate;
      log.push(`forward ${Array.from(b.slots).join(',')}`);
      const rows = b.slots.length;
      if (opts.hasHead) return { tokens: Int32Array.from(b.slots, (s) => s * 10) };
      const hidden = new Float32Array(rows * 2);
      for (let i = 0; i < rows; i++) hidden.set([b.slots[i], b.hidden ? b.hidden[i * 2 + 1] + 1 : 0], i * 2);
      return { hidden };
    },
    kv: {
      commit: (s) => void log.push(`commit ${[...s].join(',')}`),
      release: (s) => void log.push(`release ${[...s].join(',')}`),
    },
  };
}

const row = (slot: number, ancestors: number[] = []): RowMeta => ({ node: slot + 100, token: 7, position: slot, slot, ancestors, uniform: 0.5 });
const packet = (step: number, epoch: number, rows: RowMeta[], verdict: LevelPacket['verdict'] = null, hidden: Float32Array | null = null): LevelPacket => ({
  request: 1, step, epoch, verdict, rows, hidden, logitsRows: [],
});

describe('StageRunner', () => {
  it('applies verdicts before computing and forwards hidden states of surviving rows', async () => {
    const log: string[] = [];
    const out: LevelPacket[] = [];
    const r = new StageRunner(fakeCompute(log, { hasHead: false }), role(false, false), (o) => 'level' in o && out.push(o.level));
    r.push(packet(0, 0, [row(1), row(2)], { epoch: 0, commit: [0], release: [] }, Float32Array.from([1, 10, 2, 20])));
    await new Promise((res) => setTimeout(res, 10));
    expect(log).toEqual(['commit 0', 'forward 1,2']);
    expect(Array.from(out[0].hidden!)).toEqual([1, 11, 2, 21]);
  });

  it('drops rows killed by a verdict queued behind them and rows of an old epoch', async () => {
    const log: string[] = [];
    const results: number[][] = [];
    const compute = fakeCompute(log, { hasHead: true });
    let open!: () => void;
    compute.gate = new Promise((res) => (open = res));
    const r = new StageRunner(compute, role(true, true), (o) => 'result' in o && results.push(o.result.tokens));
    r.push(packet(0, 0, [row(1)])); // blocks in forward
    r.push(packet(1, 0, [row(2), row(3, [2])]));
    r.push(packet(2, 0, [row(4, [3])], { epoch: 0, commit: [1], release: [2] }));
    r.push(packet(3, 1, [row(5)], { epoch: 1, commit: [], release: [3, 4] }));
    expect(r.queued).toBe(4);
    open();
    compute.gate = null;
    await new Promise((res) => setTimeout(res, 20));
    // step 1: slot 2 released by step 2's verdict and epoch 1 arrives with step 3: both rows die.
    // step 2: its epoch 0 is older than the queued epoch 1: dies. step 3 computes.
    expect(log).toEqual(['forward 1', 'commit 1', 'release 2', 'release 3,4', 'forward 5']);
    expect(results).toEqual([[10], [], [], [50]]);
    expect(r.stats.rowsDropped).toBe(3);
  });
});
