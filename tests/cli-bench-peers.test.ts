// `npm run bench:peers`' pure parts: the engine list, the agreement against this project's tokens,
// and the table (src/cli/bench-peers-report.ts). The e2e spec (e2e/peers.spec.ts) runs the engines.
import { describe, expect, it } from 'vitest';
import { firstDifference, formatPeers, mergeRounds, peerEngines, REFERENCE_ENGINE, selectEngines, withAgreement, type PeerFiles, type PeerResult } from '../src/cli/bench-peers-report.ts';

const files: PeerFiles = { modelUrl: '/m/', onnxUrl: '/x.onnx', ggufF32Url: '/f32.gguf', ggufF16Url: '/f16.gguf', kv: { layers: 8, kvHeads: 4, headDim: 32 } };

describe('bench:peers engines', () => {
  it('lists this project (WebGPU, WASM 1 thread, the slot for WASM threads), onnxruntime-web (1/all threads, WebGPU) and wllama (F32/F16 x 1/all threads)', () => {
    const names = peerEngines(files, 4).map((e) => e.name);
    expect(names).toEqual([
      REFERENCE_ENGINE,
      'specpipe-mesh wasm 1 thread',
      'specpipe-mesh wasm 4 threads',
      'onnxruntime-web wasm 1 thread',
      'onnxruntime-web wasm 4 threads',
      'onnxruntime-web webgpu',
      'wllama f32 1 thread',
      'wllama f32 4 threads',
      'wllama f16 1 thread',
      'wllama f16 4 threads',
    ]);
    const f16 = peerEngines(files, 4).find((e) => e.name === 'wllama f16 4 threads');
    expect(f16?.spec).toEqual({ kind: 'wllama', threads: 4, ggufUrl: '/f16.gguf' });
    expect(peerEngines(files, 4).find((e) => e.name === 'specpipe-mesh wasm 4 threads')?.spec).toEqual({ kind: 'specpipe', backend: 'wasm', threads: 4, modelUrl: files.modelUrl });
  });

  it('has no "all threads" duplicates on a one-core browser, and filters by name', () => {
    expect(peerEngines(files, 1).filter((e) => e.name.includes('threads'))).toEqual([]);
    expect(selectEngines(peerEngines(files, 2), ['wllama f16']).map((e) => e.name)).toEqual(['wllama f16 1 thread', 'wllama f16 2 threads']);
    expect(() => selectEngines(peerEngines(files, 2), ['tensorflow'])).toThrow(/matches none/);
  });
});

describe('bench:peers agreement', () => {
  it('finds the first differing position, counting a shorter continuation as differing where it ends', () => {
    expect(firstDifference([1, 2, 3], [1, 2, 3])).toBeNull();
    expect(firstDifference([1, 2, 3], [1, 5, 3])).toBe(1);
    expect(firstDifference([1, 2], [1, 2, 3])).toBe(2);
    expect(firstDifference([], [])).toBeNull();
  });

  it('compares every row with the reference engine of the same context only', () => {
    const rows: PeerResult[] = [
      { engine: REFERENCE_ENGINE, context: 32, msPerToken: 40, tokens: [1, 2, 3] },
      { engine: 'wllama f32 1 thread', context: 32, msPerToken: 4, tokens: [1, 2, 9] },
      { engine: REFERENCE_ENGINE, context: 512, msPerToken: 50, tokens: [7, 8, 9] },
      { engine: 'wllama f32 1 thread', context: 512, msPerToken: 5, msPerTokenP50: 4.5, tokens: [7, 8, 9] },
      { engine: 'onnxruntime-web webgpu', context: 512, msPerToken: null, tokens: [], error: 'boom' },
    ];
    const out = withAgreement(rows);
    expect(out.map((r) => r.firstDifference)).toEqual([null, 2, null, null, undefined]);
    const table = formatPeers({ conditions: { sampling: 'greedy' }, results: out });
    expect(table).toMatch(/wllama f32 1 thread\s+4\.0\s+5\.0 \/ 4\.5\s+differs at 2, 3\/3/);
    expect(table).toMatch(/onnxruntime-web webgpu\s+-\s+failed/);
    expect(table).toContain('onnxruntime-web webgpu @512 failed: boom');
  });

  it('says so when the reference did not run', () => {
    const out = withAgreement([{ engine: 'wllama f32 1 thread', context: 32, msPerToken: 4, tokens: [1] }]);
    expect(out[0].firstDifference).toBeUndefined();
    expect(formatPeers({ conditions: {}, results: out })).toContain('no reference');
  });
});

describe('bench:peers rounds', () => {
  const row = (engine: string, ms: number | null, tokens = [1, 2]): PeerResult => ({ engine, context: 32, msPerToken: ms, msPerTokenP50: ms ?? undefined, tokens });

  it("takes the median of each figure over the rounds and the first round's tokens", () => {
    const merged = mergeRounds([[row('a', 9), row('b', 1)], [row('a', 3), row('b', 2)], [row('a', 5), row('b', 30)]]);
    expect(merged.map((r) => [r.engine, r.msPerToken, r.msPerTokenP50])).toEqual([['a', 5, 5], ['b', 2, 2]]);
  });

  it('fails a row that failed in any round, or whose tokens changed between rounds', () => {
    const failed = mergeRounds([[row('a', 9)], [{ ...row('a', null), tokens: [], error: 'boom' }]]);
    expect(failed[0]).toMatchObject({ msPerToken: null, error: 'boom' });
    const changed = mergeRounds([[row('a', 9)], [row('a', 8)], [row('a', 7, [1, 3])]]);
    expect(changed[0]).toMatchObject({ msPerToken: null, error: 'tokens differ between rounds 1 and 3' });
  });
});
