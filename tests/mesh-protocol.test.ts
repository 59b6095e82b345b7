import { describe, expect, it } from 'vitest';
import {
  decodeMessage,
  encodeMessage,
  HEADER_BYTES,
  LIMITS,
  PROTOCOL_VERSION,
  ProtocolError,
  type MeshMessage,
} from '../src/mesh/protocol.ts';
import { f16BitsToF32, f32ToF16Bits } from '../src/common/numerics.ts';
import { randomLevel, randomResult, rng, stageWorkMessages } from './support/mesh-helpers.ts';

function expectProtocolError(f: () => unknown, code: string): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    expect((e as ProtocolError).code).toBe(code);
    return;
  }
  throw new Error(`expected ProtocolError ${code}`);
}

describe('mesh protocol', () => {
  it('round-trips level packets (f32) exactly', () => {
    const rand = rng(1);
    for (let i = 0; i < 200; i++) {
      const packet = randomLevel(rand);
      const bytes = encodeMessage({ type: 'level', packet });
      expect(bytes.length % 4).toBe(0);
      expect(decodeMessage(bytes)).toEqual({ type: 'level', packet });
    }
  });

  it('round-trips result packets and configs', () => {
    const rand = rng(2);
    for (let i = 0; i < 200; i++) {
      const packet = randomResult(rand);
      expect(decodeMessage(encodeMessage({ type: 'result', packet }))).toEqual({ type: 'result', packet });
    }
    const config = { request: 7, temperature: 0.7, topK: 40, topP: 0.95 };
    expect(decodeMessage(encodeMessage({ type: 'config', config }))).toEqual({ type: 'config', config });
  });

  it('round-trips control messages', () => {
    const msgs: MeshMessage[] = [
      { type: 'hello', role: 'leader', peer: 'abc123', name: 'laptop 1 ✓' },
      { type: 'hello', role: 'stage', peer: 'x', name: '' },
      { type: 'assign', ring: 3, index: 1, count: 4, prev: 'p', next: 'n' },
      { type: 'ready', ring: 3 },
      { type: 'ping', seq: 9, time: 1234.5678 },
      { type: 'pong', seq: 9, time: 1234.5678 },
      { type: 'error', code: 'bad-version', message: 'nope' },
      { type: 'bye', reason: 'tab closed' },
    ];
    for (const m of msgs) expect(decodeMessage(encodeMessage(m))).toEqual(m);
  });

  it('round-trips stage-work messages and rejects bad values in them', () => {
    for (const m of stageWorkMessages) expect(decodeMessage(encodeMessage(m))).toEqual(m);
    const load = stageWorkMessages.find((m) => m.type === 'load')!;
    expect(() => encodeMessage({ ...load, start: 4, end: 4 } as MeshMessage)).toThrow(/load of layers \[4, 4\)/);
    expect(() => encodeMessage({ type: 'progress', load: 1, done: -1, total: 2 })).toThrow(ProtocolError);
    // A load whose layer range is reversed on the wire is refused by the decoder too.
    const bytes = encodeMessage(load);
    new DataView(bytes.buffer).setUint32(32 + 4, 9, true); // start = 9 > end
    expect(() => decodeMessage(bytes)).toThrow(/inconsistent: load of layers \[9, 5\)/);
  });

  it('carries a 64 KiB+ hidden payload, f32 exact and f16 rounded', () => {
    const rand = rng(3);
    const packet = randomLevel(rand, { rows: 4, hidden: 4096, verdict: true });
    const f32 = encodeMessage({ type: 'level', packet });
    expect(f32.length).toBeGreaterThan(64 * 1024);
    const back = decodeMessage(f32);
    expect(back.type === 'level' && back.packet.hidden).toEqual(packet.hidden);

    const f16 = encodeMessage({ type: 'level', packet }, { dtype: 'f16' });
    expect(f16.length).toBeLessThan(f32.length / 2 + 256);
    const half = decodeMessage(f16);
    if (half.type !== 'level' || !half.packet.hidden || !packet.hidden) throw new Error('no hidden');
    for (let i = 0; i < packet.hidden.length; i++) {
      expect(Math.abs(half.packet.hidden[i] - packet.hidden[i])).toBeLessThanOrEqual(Math.abs(packet.hidden[i]) * 2 ** -11 + 1e-7);
    }
  });

  it('converts f16 like IEEE (ties to even, subnormals, inf, nan)', () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(-2)).toBe(0xc000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00);
    expect(f32ToF16Bits(2 ** -24)).toBe(1);
    expect(f32ToF16Bits(2 ** -26)).toBe(0);
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f16BitsToF32(f32ToF16Bits(Infinity))).toBe(Infinity);
    expect(f16BitsToF32(f32ToF16Bits(NaN))).toBeNaN();
    for (let h = 0; h < 0x7c00; h++) expect(f32ToF16Bits(f16BitsToF32(h))).toBe(h);
  });

  it('rejects bad magic, wrong version, truncation, trailing bytes, unknown type', () => {
    const good = encodeMessage({ type: 'level', packet: randomLevel(rng(4), { rows: 2, hidden: 8 }) });
    const bad = (f: (b: Uint8Array) => Uint8Array | void, code: string): void => {
      const b = good.slice();
      const out = f(b) ?? b;
      expectProtocolError(() => decodeMessage(out), code);
    };
    bad((b) => void (b[0] ^= 1), 'bad-magic');
    bad((b) => void (b[4] = PROTOCOL_VERSION + 1), 'bad-version');
    bad((b) => void (b[5] = 99), 'bad-type');
    bad((b) => void (b[6] = 7), 'bad-value');
    bad((b) => b.subarray(0, HEADER_BYTES - 1), 'truncated');
    bad((b) => b.subarray(0, b.length - 4), 'truncated');
    bad((b) => {
      const c = new Uint8Array(b.length + 4);
      c.set(b);
      return c;
    }, 'inconsistent');
    // Row count larger than the metadata can hold.
    bad((b) => void new DataView(b.buffer).setUint32(20, 3, true), 'truncated');
    // Row count over the limit.
    bad((b) => void new DataView(b.buffer).setUint32(20, LIMITS.maxRows + 1, true), 'oversized');
    // Payload no longer a multiple of the row count: shrink rows to... keep rows, grow meta claim.
    bad((b) => void new DataView(b.buffer).setUint32(24, 2, true), 'inconsistent');
    expectProtocolError(() => decodeMessage(new Uint8Array(LIMITS.maxMessageBytes + 1)), 'oversized');
    expectProtocolError(() => decodeMessage(good, { maxBytes: 100 }), 'oversized');
  });

  it('rejects inconsistent packets at encode time too', () => {
    const p = randomLevel(rng(5), { rows: 3, hidden: 4 });
    expectProtocolError(() => encodeMessage({ type: 'level', packet: { ...p, hidden: new Float32Array(7) } }), 'inconsistent');
    expectProtocolError(() => encodeMessage({ type: 'level', packet: { ...p, logitsRows: [3] } }), 'inconsistent');
    expectProtocolError(() => encodeMessage({ type: 'level', packet: { ...p, step: -1 } }), 'bad-value');
    expectProtocolError(
      () => encodeMessage({ type: 'result', packet: { request: 0, step: 0, epoch: 0, nodes: [1], tokens: [], logits: null, logitsRows: [] } }),
      'inconsistent',
    );
  });
});
