import { describe, expect, it } from 'vitest';
import {
  decodeMessage,
  encodeMessage,
  HEADER_BYTES,
  LIMITS,
  PROTOCOL_VERSION,
  ProtocolError,
  type MeshMessage,
  type ProtocolErrorCode,
} from '../src/mesh/protocol.ts';
import { SpecpipeError } from '../src/common/errors.ts';
import { f16BitsToF32, f32ToF16Bits } from '../src/common/numerics.ts';
import { controlMessages, randomLevel, randomResult, rng, stageWorkMessages } from './support/mesh-helpers.ts';

function expectProtocolError(f: () => unknown, reason: ProtocolErrorCode): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    expect(e).toBeInstanceOf(SpecpipeError);
    expect((e as ProtocolError).code).toBe('protocol');
    expect((e as ProtocolError).reason).toBe(reason);
    return;
  }
  throw new Error(`expected ProtocolError ${reason}`);
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));

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

  it('round-trips result packets', () => {
    const rand = rng(2);
    for (let i = 0; i < 200; i++) {
      const packet = randomResult(rand);
      expect(decodeMessage(encodeMessage({ type: 'result', packet }))).toEqual({ type: 'result', packet });
    }
  });

  it('round-trips control messages', () => {
    for (const m of controlMessages) expect(decodeMessage(encodeMessage(m))).toEqual(m);
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
    const bad = (f: (b: Uint8Array) => Uint8Array | void, reason: ProtocolErrorCode): void => {
      const b = good.slice();
      const out = f(b) ?? b;
      expectProtocolError(() => decodeMessage(out), reason);
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

  it('keeps the wire bytes of protocol version 2 (golden messages)', () => {
    const level: MeshMessage = {
      type: 'level',
      packet: {
        request: 7,
        step: 3,
        epoch: 2,
        verdict: { epoch: 2, commit: [5], release: [] },
        rows: [{ node: 9, token: 42, position: 17, slot: 4, ancestors: [1, 2], uniform: 0.25 }],
        hidden: Float32Array.of(1, -2.5),
        logitsRows: [0],
      },
    };
    const levelMeta = '02000000010000000000000005000000090000002a0000001100000004000000000000000000d03f0200000001000000020000000100000000000000';
    const golden: [MeshMessage, 'f32' | 'f16', string][] = [
      [level, 'f32', `53504d3102010101070000000300000002000000010000003c00000008000000${levelMeta}0000803f000020c0`],
      [level, 'f16', `53504d3102010201070000000300000002000000010000003c00000004000000${levelMeta}003c00c1`],
      [
        { type: 'result', packet: { request: 7, step: 3, epoch: 2, nodes: [9], tokens: [42], logits: Float32Array.of(0.5, 1), logitsRows: [0] } },
        'f32',
        '53504d3102020100070000000300000002000000010000001000000008000000090000002a00000001000000000000000000003f0000803f',
      ],
      [controlMessages[0], 'f32', '53504d3102030000070000000000000000000000000000001400000000000000666666666666e63f28000000666666666666ee3f'],
      [
        { type: 'hello', role: 'stage', peer: 'p1', name: 'tab ✓' },
        'f32',
        '53504d31021000000000000000000000000000000000000010000000000000000102007031070074616220e29c930000',
      ],
      [
        { type: 'load', load: 3, modelUrl: '/m/', start: 2, end: 5, embed: false, head: true, numSlots: 300, wire: 'f16', hopDelayMs: 25, stageFixedMs: 50, stagePerRowMs: 0.5 },
        'f32',
        '53504d3102180000000000000000000000000000000000002c000000000000000300000002000000050000002c01000019000000020203002f6d2f0000000000004940000000000000e03f00',
      ],
      [
        {
          type: 'stats', request: 1, packets: 2, rowsComputed: 3, rowsDropped: 0, busyMs: 1.5, spanMs: 2, nextRttP50Ms: null, nextRttP95Ms: 4.25, nextRttSamples: 12,
          levels: 4, overruns: 1, levelMsP50: 12.5,
        },
        'f32',
        '53504d31021d0000000000000000000000000000000000004400000000000000010000000200000003000000000000000c000000000000000000f83f0000000000000040000000000000f87f00000000000011400400000001000000' +
          '0000000000002940',
      ],
    ];
    for (const [m, dtype, bytes] of golden) {
      expect(hex(encodeMessage(m, { dtype })), `${m.type} ${dtype}`).toBe(bytes);
      if (dtype === 'f32') expect(decodeMessage(fromHex(bytes))).toEqual(m);
    }
  });

  it('has one encoding per message: f16 NaN, absent numbers and a leading BOM', () => {
    const packet = randomLevel(rng(6), { rows: 1, hidden: 4 });
    packet.hidden = Float32Array.of(NaN, -NaN, 1, new Float32Array(Uint32Array.of(0xffc00001).buffer)[0]);
    const f16 = encodeMessage({ type: 'level', packet }, { dtype: 'f16' });
    const at = f16.length - 8;
    expect(hex(f16.subarray(at))).toBe('007e007e003c007e'); // every NaN as 0x7e00
    for (const nan of [0xfe00, 0x7c01, 0x7e01]) {
      const b = f16.slice();
      new DataView(b.buffer).setUint16(at, nan, true);
      expectProtocolError(() => decodeMessage(b), 'bad-value');
    }
    // An absent f64 is the one quiet NaN; another NaN would decode to null and re-encode differently.
    const stats = stageWorkMessages.find((m) => m.type === 'stats' && m.nextRttP50Ms === null)!;
    const bytes = encodeMessage(stats);
    const p50 = HEADER_BYTES + 5 * 4 + 2 * 8;
    expect(hex(bytes.subarray(p50, p50 + 8))).toBe('000000000000f87f');
    bytes[p50] = 1;
    expectProtocolError(() => decodeMessage(bytes), 'bad-value');
    // U+FEFF at the start of a string is kept, not taken for a byte-order mark.
    const bye: MeshMessage = { type: 'bye', reason: '\ufeffbye' };
    expect(decodeMessage(encodeMessage(bye))).toEqual(bye);
  });
});
