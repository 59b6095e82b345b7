// Fuzzing the decoder: whatever the bytes, decodeMessage returns a valid message (one that
// re-encodes and decodes to itself) or throws a ProtocolError that is not an internal failure.
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, ProtocolError, type MeshMessage } from '../src/mesh/protocol.ts';
import { FrameAssembler, FramingError, splitFrames } from '../src/mesh/framing.ts';
import { randomLevel, randomResult, rng, stageWorkMessages } from './support/mesh-helpers.ts';

const N = Number(process.env.FUZZ_ITERATIONS ?? 20_000);

function check(bytes: Uint8Array, stats: { ok: number; rejected: number }): void {
  let msg: MeshMessage;
  try {
    msg = decodeMessage(bytes);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw new Error(`non-ProtocolError thrown: ${String(e)}`);
    if (e.code === 'internal') throw e;
    stats.rejected++;
    return;
  }
  stats.ok++;
  // Valid: re-encodes (with the dtype it came in) and decodes to the same thing.
  const dtype = bytes[6] === 2 ? 'f16' : 'f32';
  expect(decodeMessage(encodeMessage(msg, { dtype }))).toEqual(msg);
}

function validSamples(rand: () => number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < 40; i++) {
    out.push(encodeMessage({ type: 'level', packet: randomLevel(rand) }, { dtype: rand() < 0.5 ? 'f32' : 'f16' }));
    out.push(encodeMessage({ type: 'result', packet: randomResult(rand) }));
  }
  out.push(encodeMessage({ type: 'config', config: { request: 1, temperature: 1, topK: 0, topP: 1 } }));
  out.push(encodeMessage({ type: 'hello', role: 'stage', peer: 'peer-1', name: 'tab' }));
  out.push(encodeMessage({ type: 'assign', ring: 1, index: 0, count: 2, prev: 'a', next: 'b' }));
  out.push(encodeMessage({ type: 'ping', seq: 1, time: 5 }));
  out.push(encodeMessage({ type: 'error', code: 'x', message: 'y' }));
  for (const m of stageWorkMessages) out.push(encodeMessage(m));
  return out;
}

describe('decoder fuzzing', () => {
  it('random bytes: decode or ProtocolError', () => {
    const rand = rng(11);
    const stats = { ok: 0, rejected: 0 };
    for (let i = 0; i < N; i++) {
      const b = new Uint8Array(Math.floor(rand() * 200));
      for (let j = 0; j < b.length; j++) b[j] = rand() * 256;
      // Half of them get a valid magic + version so the decoder gets past the first checks.
      if (rand() < 0.5 && b.length >= 8) b.set([0x53, 0x50, 0x4d, 0x31, 1], 0);
      check(b, stats);
    }
    expect(stats.rejected).toBeGreaterThan(0);
  });

  it('truncations and bit flips of valid messages: decode or ProtocolError', () => {
    const rand = rng(12);
    const samples = validSamples(rand);
    const stats = { ok: 0, rejected: 0 };
    for (let i = 0; i < N; i++) {
      const src = samples[Math.floor(rand() * samples.length)];
      let b = src.slice();
      const op = rand();
      if (op < 0.3) {
        b = b.slice(0, Math.floor(rand() * b.length));
      } else if (op < 0.8) {
        const flips = 1 + Math.floor(rand() * 4);
        for (let k = 0; k < flips; k++) b[Math.floor(rand() * b.length)] ^= 1 << Math.floor(rand() * 8);
      } else {
        // Overwrite a header field with a random u32 (counts and lengths).
        const field = 8 + 4 * Math.floor(rand() * 6);
        new DataView(b.buffer).setUint32(field, rand() < 0.5 ? Math.floor(rand() * 0x100000000) : Math.floor(rand() * 64), true);
      }
      check(b, stats);
    }
    // Flips in payload floats leave valid messages; flips in structure are rejected: both happen.
    expect(stats.ok).toBeGreaterThan(0);
    expect(stats.rejected).toBeGreaterThan(0);
  });

  it('frame assembler: random frames never throw anything but FramingError', () => {
    const rand = rng(13);
    const msg = encodeMessage({ type: 'level', packet: randomLevel(rand, { rows: 2, hidden: 2048 }) });
    for (let i = 0; i < 2000; i++) {
      const frames = splitFrames(msg, i, 4096);
      const a = new FrameAssembler(1 << 20);
      const k = Math.floor(rand() * frames.length);
      const f = frames[k].slice();
      f[Math.floor(rand() * Math.min(f.length, 16))] ^= 1 << Math.floor(rand() * 8);
      frames[k] = f;
      try {
        let out: Uint8Array | null = null;
        for (const fr of frames) out = a.push(fr)?.message ?? out;
        if (out) expect(out.length).toBe(msg.length);
      } catch (e) {
        if (!(e instanceof FramingError)) throw e;
      }
    }
  });
});
