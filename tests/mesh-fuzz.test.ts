// Fuzzing the decoder, driven by the schema table (src/mesh/protocol-schema.ts): every field of every
// message type is changed the ways its kind can go wrong (truncated, dropped, repeated, over-long
// counts, bad enum codes and flag bits, out-of-range numbers, bad UTF-8), and so are every header word
// and the payload's special values.
// Whatever the bytes, decodeMessage returns a message that re-encodes to the very same bytes, or
// throws a ProtocolError that is not an internal failure; where the schema says which reason a
// change must give, it gives that one.
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, LIMITS, ProtocolError, traceMessage, type FieldSpan, type ProtocolErrorCode } from '../src/mesh/protocol.ts';
import {
  HEADER_BYTES,
  HEADER_LAYOUT,
  PROTOCOL_VERSION,
  RANGES,
  SCHEMAS,
  type FieldKind,
  type HeaderWord,
  type MeshMessageType,
  type WireField,
} from '../src/mesh/protocol-schema.ts';
import { FrameAssembler, FramingError, splitFrames } from '../src/mesh/framing.ts';
import { randomLevel, rng, sampleMessages } from './support/mesh-helpers.ts';

const N = Number(process.env.FUZZ_ITERATIONS ?? 20_000);

type Outcome = ProtocolErrorCode | 'ok';

/** Decodes; a message must re-encode (with the dtype it came in) to the same bytes. */
function check(bytes: Uint8Array): Outcome {
  let msg;
  try {
    msg = decodeMessage(bytes);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw new Error(`non-ProtocolError thrown: ${String(e)}`);
    if (e.reason === 'internal') throw e;
    return e.reason;
  }
  const again = encodeMessage(msg, { dtype: bytes[6] === 2 ? 'f16' : 'f32' });
  if (Buffer.compare(again, bytes) !== 0) throw new Error(`${msg.type} re-encodes to other bytes`);
  return 'ok';
}

/** A changed copy of a valid message, and the outcomes the change allows (any, when absent). */
interface Mutant {
  label: string;
  bytes: Uint8Array;
  must?: readonly Outcome[];
}

const U32_EDGES = [0, 1, 0x7fffffff, 0xffffffff];
const F64_EDGES = [NaN, Infinity, -Infinity, -1, -0, 0.5, 1, 2 ** 1000];
const BYTES = Array.from({ length: 256 }, (_, i) => i);
const TYPE_CODES = new Set(Object.values(SCHEMAS).map((s) => s.code));
/** One-byte header words: every type code (type confusion), every flag bit, the ends. */
const HEADER_BYTE_EDGES = [...new Set([0, 1, 2, 3, 4, 8, 16, 32, 64, 128, 255, ...TYPE_CODES])];
const nameOf = (f: WireField): string => (f.kind === 'bits' ? f.names.join('+') : f.name);

function edit(src: Uint8Array, f: (v: DataView, b: Uint8Array) => void): Uint8Array {
  const b = src.slice();
  f(new DataView(b.buffer), b);
  return b;
}

/** The message with its metadata replaced (zero-padded, header length fixed), header and payload kept. */
function withMeta(src: Uint8Array, meta: Uint8Array): Uint8Array {
  const oldMeta = new DataView(src.buffer, src.byteOffset).getUint32(24, true);
  const padded = Math.ceil(meta.length / 4) * 4;
  const out = new Uint8Array(src.length - oldMeta + padded);
  out.set(src.subarray(0, HEADER_BYTES));
  out.set(meta, HEADER_BYTES);
  out.set(src.subarray(HEADER_BYTES + oldMeta), HEADER_BYTES + padded);
  new DataView(out.buffer).setUint32(24, padded, true);
  return out;
}

/** Changes particular to a field's kind (its value lies at span.start). */
const BY_KIND: { [K in FieldKind]: (b: Uint8Array, f: Extract<WireField, { kind: K }>, s: FieldSpan) => Mutant[] } = {
  u32: (b, _f, s) => U32_EDGES.map((v) => ({ label: `= ${v}`, bytes: edit(b, (d) => d.setUint32(s.start, v, true)) })),
  f64: (b, f, s) => f64Mutants(b, s, (v) => (RANGES[f.range].ok(v) ? undefined : ['bad-value'])),
  'f64?': (b, f, s) => f64Mutants(b, s, (v) => (Number.isNaN(v) || RANGES[f.range].ok(v) ? undefined : ['bad-value'])),
  str: (b, _f, s) => {
    const n = new DataView(b.buffer).getUint16(s.start, true);
    const setLength = (v: number, must?: Outcome[]): Mutant => ({ label: `length ${v}`, bytes: edit(b, (d) => d.setUint16(s.start, v, true)), must });
    const out = [setLength(0), setLength(n + 1), setLength(LIMITS.maxStringBytes + 1, ['oversized']), setLength(0xffff, ['oversized'])];
    if (n > 0) out.push(setLength(n - 1), { label: 'byte 0xff', bytes: edit(b, (_d, x) => void (x[s.start + 2] = 0xff)), must: ['bad-value'] });
    if (n >= 3) out.push({ label: 'BOM', bytes: edit(b, (_d, x) => x.set([0xef, 0xbb, 0xbf], s.start + 2)), must: ['ok'] });
    return out;
  },
  enum: (b, f, s) => {
    const valid = new Set(Object.values(f.codes));
    return BYTES.map((v) => ({ label: `code ${v}`, bytes: edit(b, (_d, x) => void (x[s.start] = v)), must: [valid.has(v) ? 'ok' : 'bad-value'] }));
  },
  bits: (b, f, s) => BYTES.map((v) => ({ label: `bits ${v}`, bytes: edit(b, (_d, x) => void (x[s.start] = v)), must: [v >>> f.names.length ? 'bad-value' : 'ok'] })),
  len: (b, _f, s) => countMutants(b, s.start, LIMITS.maxListLength),
  u32s: (b, f, s) => {
    const out = f.count === 'prefix' ? countMutants(b, s.start, f.max) : [];
    const first = f.count === 'prefix' ? s.start + 4 : s.start;
    if (f.below && first < s.end) {
      const rows = new DataView(b.buffer).getUint32(20, true);
      for (const v of [rows, 0xffffffff]) out.push({ label: `index ${v}`, bytes: edit(b, (d) => d.setUint32(first, v, true)), must: ['inconsistent'] });
    }
    return out;
  },
  // Their fields have spans of their own; the header's row count and flags are mutated with the header.
  records: () => [],
  option: () => [],
};

function f64Mutants(b: Uint8Array, s: FieldSpan, must: (v: number) => Outcome[] | undefined): Mutant[] {
  const out: Mutant[] = F64_EDGES.map((v) => ({ label: `= ${v}`, bytes: edit(b, (d) => d.setFloat64(s.start, v, true)), must: must(v) }));
  // A NaN other than the absent marker is refused whatever the range.
  out.push({ label: 'NaN 0x7ff8000000000001', bytes: edit(b, (d) => (d.setUint32(s.start, 1, true), d.setUint32(s.start + 4, 0x7ff80000, true))), must: ['bad-value'] });
  return out;
}

function countMutants(b: Uint8Array, at: number, max: number): Mutant[] {
  const n = new DataView(b.buffer).getUint32(at, true);
  const set = (v: number, must?: Outcome[]): Mutant => ({ label: `count ${v}`, bytes: edit(b, (d) => d.setUint32(at, v, true)), must });
  const out = [set(0), set(n + 1), set(max, ['truncated']), set(max + 1, ['oversized']), set(0xffffffff, ['oversized'])];
  if (n > 0) out.push(set(n - 1));
  return out;
}

/** Changes any field can suffer: metadata cut at it, the field dropped or repeated, the message cut at it. */
function structuralMutants(b: Uint8Array, s: FieldSpan): Mutant[] {
  const meta = b.subarray(HEADER_BYTES, HEADER_BYTES + new DataView(b.buffer).getUint32(24, true));
  const [start, end] = [s.start - HEADER_BYTES, s.end - HEADER_BYTES];
  const join = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));
  return [
    { label: 'metadata cut before it', bytes: withMeta(b, meta.subarray(0, start)) },
    { label: 'metadata cut inside it', bytes: withMeta(b, meta.subarray(0, Math.min(start + 1, end))) },
    { label: 'dropped', bytes: withMeta(b, join(meta.subarray(0, start), meta.subarray(end))) },
    { label: 'repeated', bytes: withMeta(b, join(meta.subarray(0, end), meta.subarray(start))) },
    { label: 'message cut before it', bytes: b.subarray(0, s.start), must: ['truncated'] },
  ];
}

/** The reason a header word set to v must give, where only one can. */
function headerMust(type: MeshMessageType, word: HeaderWord, v: number): Outcome[] | undefined {
  const flags = SCHEMAS[type].fields.reduce((bits, f) => (f.kind === 'option' ? bits | f.flag : bits), 0);
  if (word === 'magic') return ['bad-magic'];
  if (word === 'version') return v === PROTOCOL_VERSION ? undefined : ['bad-version'];
  if (word === 'type') return TYPE_CODES.has(v) ? undefined : ['bad-type'];
  if ((word === 'dtype' && v > 2) || (word === 'flags' && v & ~flags)) return ['bad-value'];
  if (word === 'rows' && v > LIMITS.maxRows) return ['oversized'];
  if (word === 'metaBytes' || word === 'payloadBytes') return ['truncated', 'inconsistent'];
  return undefined;
}

/** Every header word set to its edge values. */
function headerMutants(b: Uint8Array, type: MeshMessageType): Mutant[] {
  const view = new DataView(b.buffer);
  return HEADER_LAYOUT.flatMap(({ name, at, bytes }) => {
    const now = bytes === 1 ? view.getUint8(at) : view.getUint32(at, true);
    const values = bytes === 1 ? HEADER_BYTE_EDGES : [...U32_EDGES, now + 1, now - 1, now + 4, now - 4].filter((v) => v >= 0 && v <= 0xffffffff);
    return values
      .filter((v) => v !== now)
      .map((v) => ({
        label: `header ${name} ${v}`,
        bytes: edit(b, (d) => (bytes === 1 ? d.setUint8(at, v) : d.setUint32(at, v, true))),
        must: headerMust(type, name, v),
      }));
  });
}

/** The payload's first element set to special values: any f32 bits travel as they are, f16 NaN only as 0x7e00. */
function payloadMutants(b: Uint8Array): Mutant[] {
  const view = new DataView(b.buffer);
  const at = HEADER_BYTES + view.getUint32(24, true);
  if (view.getUint32(28, true) === 0) return [];
  if (b[6] === 1) return [0x7fc00000, 0xffc00001, 0x7f800000, 0x80000000].map((v) => ({ label: `f32 0x${v.toString(16)}`, bytes: edit(b, (d) => d.setUint32(at, v, true)), must: ['ok'] }));
  return [0x7e00, 0x7c00, 0xfc00, 0x8000, 0xfe00, 0x7c01, 0x7fff].map((v) => ({
    label: `f16 0x${v.toString(16)}`,
    bytes: edit(b, (d) => d.setUint16(at, v, true)),
    must: [v === 0x7e00 || (v & 0x3ff) === 0 || (v & 0x7c00) !== 0x7c00 ? 'ok' : 'bad-value'],
  }));
}

/** Every field path of every message type in the table ('level:rows.ancestors'). */
function schemaPaths(): Set<string> {
  const out = new Set<string>();
  const walk = (type: string, fields: readonly WireField[], prefix: string): void => {
    for (const f of fields) {
      out.add(`${type}:${prefix}${nameOf(f)}`);
      if (f.kind === 'records' || f.kind === 'option') walk(type, f.fields, `${prefix}${f.name}.`);
    }
  };
  for (const [type, s] of Object.entries(SCHEMAS)) walk(type, s.fields, '');
  return out;
}

describe('decoder fuzzing', () => {
  it('every field of every message type, mutated per its schema: decode to the same bytes or ProtocolError', () => {
    const rand = rng(12);
    const messages = sampleMessages(rand, 6);
    const covered = new Set<string>();
    const outcomes = new Map<Outcome, number>();
    for (const msg of messages) {
      // Only a payload differs between the dtypes.
      for (const dtype of SCHEMAS[msg.type].payload ? (['f32', 'f16'] as const) : (['f32'] as const)) {
        const { bytes, spans } = traceMessage(msg, { dtype });
        expect(check(bytes)).toBe('ok');
        const mutants = [...headerMutants(bytes, msg.type), ...payloadMutants(bytes)];
        for (const s of spans) {
          covered.add(`${msg.type}:${s.path}`);
          const byKind = BY_KIND[s.field.kind] as (b: Uint8Array, f: WireField, s: FieldSpan) => Mutant[];
          for (const m of [...byKind(bytes, s.field, s), ...structuralMutants(bytes, s)]) mutants.push({ ...m, label: `${msg.type} ${s.path}: ${m.label}` });
        }
        for (const m of mutants) {
          const got = check(m.bytes);
          if (m.must && !m.must.includes(got)) expect.fail(`${m.label}: ${got}, expected ${m.must.join(" or ")}`);
          outcomes.set(got, (outcomes.get(got) ?? 0) + 1);
        }
      }
    }
    expect([...schemaPaths()].filter((p) => !covered.has(p))).toEqual([]);
    expect([...outcomes.keys()].sort()).toEqual(['bad-magic', 'bad-type', 'bad-value', 'bad-version', 'inconsistent', 'ok', 'oversized', 'truncated']);
  });

  it('random bytes: decode or ProtocolError', () => {
    const rand = rng(11);
    let rejected = 0;
    for (let i = 0; i < N; i++) {
      const b = new Uint8Array(Math.floor(rand() * 200));
      for (let j = 0; j < b.length; j++) b[j] = rand() * 256;
      // Half of them get a valid magic + version so the decoder gets past the first checks.
      if (rand() < 0.5 && b.length >= 8) b.set([0x53, 0x50, 0x4d, 0x31, 1], 0);
      if (check(b) !== 'ok') rejected++;
    }
    expect(rejected).toBeGreaterThan(0);
  });

  it('random truncations and bit flips of valid messages: decode or ProtocolError', () => {
    const rand = rng(13);
    const samples = sampleMessages(rand, 40).map((m) => encodeMessage(m, { dtype: rand() < 0.5 ? 'f32' : 'f16' }));
    const seen = new Set<'ok' | 'rejected'>();
    for (let i = 0; i < N; i++) {
      let b = samples[Math.floor(rand() * samples.length)].slice();
      if (rand() < 0.3) {
        b = b.subarray(0, Math.floor(rand() * b.length));
      } else {
        const flips = 1 + Math.floor(rand() * 4);
        for (let k = 0; k < flips; k++) b[Math.floor(rand() * b.length)] ^= 1 << Math.floor(rand() * 8);
      }
      seen.add(check(b) === 'ok' ? 'ok' : 'rejected');
    }
    // Flips in payload floats leave valid messages; flips in structure are rejected: both happen.
    expect(seen).toContain('ok');
    expect(seen).toContain('rejected');
  });

  it('frame assembler: random frames never throw anything but FramingError', () => {
    const rand = rng(14);
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
