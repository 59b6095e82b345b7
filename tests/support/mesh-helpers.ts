// Shared fixtures for the mesh unit tests (not a test file itself).
import type { LevelPacket, ResultPacket } from '../../src/pipeline/contract.ts';
import type { MeshMessage } from '../../src/mesh/protocol.ts';

export { seededRandom as rng } from '../../src/common/numerics.ts';

export function randomLevel(rand: () => number, opts: { rows?: number; hidden?: number; verdict?: boolean } = {}): LevelPacket {
  const u32 = (): number => Math.floor(rand() * 0x100000000);
  const nRows = opts.rows ?? Math.floor(rand() * 6);
  const hidden = opts.hidden ?? Math.floor(rand() * 5) * 4;
  const rows = Array.from({ length: nRows }, () => ({
    node: u32(),
    token: Math.floor(rand() * 32000),
    position: Math.floor(rand() * 4096),
    slot: Math.floor(rand() * 512),
    uniform: rand(),
    ancestors: Array.from({ length: Math.floor(rand() * 4) }, () => Math.floor(rand() * 512)),
  }));
  const withVerdict = opts.verdict ?? rand() < 0.5;
  return {
    request: u32(),
    step: u32(),
    epoch: Math.floor(rand() * 100),
    verdict: withVerdict
      ? {
          epoch: Math.floor(rand() * 100),
          commit: Array.from({ length: Math.floor(rand() * 4) }, () => Math.floor(rand() * 512)),
          release: Array.from({ length: Math.floor(rand() * 4) }, () => Math.floor(rand() * 512)),
        }
      : null,
    rows,
    hidden: hidden && nRows ? Float32Array.from({ length: nRows * hidden }, () => rand() * 4 - 2) : null,
    logitsRows: nRows ? Array.from({ length: Math.floor(rand() * 3) }, () => Math.floor(rand() * nRows)) : [],
  };
}

export function randomResult(rand: () => number): ResultPacket {
  const n = Math.floor(rand() * 6);
  const logitsRows = Array.from({ length: Math.floor(rand() * 3) }, () => Math.floor(rand() * 8));
  const vocab = 1 + Math.floor(rand() * 8);
  return {
    request: Math.floor(rand() * 1000),
    step: Math.floor(rand() * 1000),
    epoch: Math.floor(rand() * 10),
    nodes: Array.from({ length: n }, () => Math.floor(rand() * 1000)),
    tokens: Array.from({ length: n }, () => Math.floor(rand() * 32000)),
    logits: logitsRows.length ? Float32Array.from({ length: logitsRows.length * vocab }, () => rand()) : null,
    logitsRows,
  };
}

/** One valid message of each stage-work type (leader <-> stage on the direct lane). */
export const stageWorkMessages: MeshMessage[] = [
  { type: 'info', device: 'google swiftshader (fallback)', gbps: 0.61, memoryBytes: 2 ** 31 },
  { type: 'load', load: 3, modelUrl: 'https://192.168.1.5:8443/models/demo-target/', start: 2, end: 5, embed: false, head: true, numSlots: 300, wire: 'f16', hopDelayMs: 25, stageFixedMs: 50, stagePerRowMs: 2.5 },
  { type: 'load', load: 4, modelUrl: '/m/', start: 0, end: 1, embed: true, head: false, numSlots: 1, wire: 'f32', hopDelayMs: 0, stageFixedMs: 0, stagePerRowMs: 0 },
  { type: 'progress', load: 3, done: 1024, total: 4096 },
  { type: 'loaded', load: 3, weightBytes: 4_200_000, ms: 812.5, error: '' },
  { type: 'loaded', load: 4, weightBytes: 0, ms: 3, error: 'tensor model.layers.1.mlp.up_proj.weight: 404' },
  { type: 'credit', request: 2, processed: 17 },
  { type: 'query', request: 2 },
  { type: 'stats', request: 2, packets: 40, rowsComputed: 52, rowsDropped: 3, busyMs: 950.25, spanMs: 2000, nextRttP50Ms: 1.5, nextRttP95Ms: 4.25, nextRttSamples: 12, levels: 38, overruns: 2, levelMsP50: 51.25 },
  { type: 'stats', request: 1, packets: 0, rowsComputed: 0, rowsDropped: 0, busyMs: 0, spanMs: 0, nextRttP50Ms: null, nextRttP95Ms: null, nextRttSamples: 0, levels: 0, overruns: 0, levelMsP50: null },
  { type: 'resumed', request: 3, keep: 41, kept: 39, prefilled: 2, ms: 12.5 },
];

/** One valid message of each link-control type, and a config (multi-byte UTF-8 and empty strings too). */
export const controlMessages: MeshMessage[] = [
  { type: 'config', config: { request: 7, temperature: 0.7, topK: 40, topP: 0.95 } },
  { type: 'keep', request: 8, positions: 41 },
  { type: 'hello', role: 'leader', peer: 'abc123', name: 'laptop 1 ✓' },
  { type: 'hello', role: 'stage', peer: 'x', name: '' },
  { type: 'assign', ring: 3, index: 1, count: 4, prev: 'p', next: 'n' },
  { type: 'ready', ring: 3 },
  { type: 'ping', seq: 9, time: 1234.5678 },
  { type: 'pong', seq: 9, time: -0.5 },
  { type: 'error', code: 'bad-version', message: 'nope' },
  { type: 'bye', reason: 'tab closed' },
];

/** Valid messages of every type: `n` random levels (half with a verdict) and results, then the fixed ones. */
export function sampleMessages(rand: () => number, n: number): MeshMessage[] {
  return [
    ...Array.from({ length: n }, (_, i): MeshMessage => ({ type: 'level', packet: randomLevel(rand, { verdict: i % 2 === 0 }) })),
    ...Array.from({ length: n }, (): MeshMessage => ({ type: 'result', packet: randomResult(rand) })),
    ...controlMessages,
    ...stageWorkMessages,
  ];
}
