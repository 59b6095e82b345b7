// The mesh wire protocol as data: the fixed header and one field list per message type, in wire
// order. protocol.ts interprets this table to encode, decode and validate; tests/mesh-fuzz.test.ts
// walks it to mutate every field. Little-endian throughout.
//
// A message is the 32-byte header (HEADER_LAYOUT), then `metaBytes` of metadata (the type's fields,
// zero-padded to 4 bytes), then `payloadBytes` of f32 or f16 payload (a Float32Array once decoded).
// Field encodings:
//   u32, f64        little-endian; every f64 has a range, so NaN never travels as a value
//   f64?            f64, absent (null) as the quiet NaN 0x7ff8000000000000 and no other NaN
//   str             u16 byte length + UTF-8 (at most LIMITS.maxStringBytes)
//   enum, bits      one byte: a code from `codes`; booleans packed, bit i = names[i]
//   u32s            u32 elements, counted by a u32 just before them ('prefix'), by the header's row
//                   count ('rows') or by an earlier `len` field ('ahead')
//   records         one field list per header row (the level's rows)
//   option          a field list present when a header flag bit is set, else null (the verdict)
// Stage work (direct lane, leader <-> stage): info, load, progress, loaded, credit, query, stats,
// resumed; on the ring lane, ahead of a resumed request's config: keep;
// their request ids live in the metadata (the header's request slot is the level/config one).

import type { LevelPacket, ResultPacket, RequestConfig } from '../pipeline/contract.ts';

export const PROTOCOL_MAGIC = 0x314d5053; // bytes 'S' 'P' 'M' '1'
export const PROTOCOL_VERSION = 2;
export const HEADER_BYTES = 32;

/** The fixed header, in wire order. */
export const HEADER_LAYOUT = [
  { name: 'magic', at: 0, bytes: 4 },
  { name: 'version', at: 4, bytes: 1 },
  { name: 'type', at: 5, bytes: 1 },
  /** 0: no payload, else DTYPE_CODES. */
  { name: 'dtype', at: 6, bytes: 1 },
  /** Bits of the type's `option` fields. */
  { name: 'flags', at: 7, bytes: 1 },
  { name: 'request', at: 8, bytes: 4 },
  { name: 'step', at: 12, bytes: 4 },
  { name: 'epoch', at: 16, bytes: 4 },
  { name: 'rows', at: 20, bytes: 4 },
  /** A multiple of 4. */
  { name: 'metaBytes', at: 24, bytes: 4 },
  { name: 'payloadBytes', at: 28, bytes: 4 },
] as const;
export type HeaderWord = (typeof HEADER_LAYOUT)[number]['name'];
/** Header slots a message type may fill from its fields; they are 0 on every other type. */
export type HeaderSlot = 'request' | 'step' | 'epoch';

/** Limits the decoder enforces (a message breaking one is rejected as oversized). */
export const LIMITS = {
  maxMessageBytes: 64 * 1024 * 1024,
  maxRows: 65_536,
  maxAncestors: 4_096,
  maxListLength: 1 << 20,
  maxStringBytes: 1_024,
} as const;

export type PayloadDtype = 'f32' | 'f16';
export type MeshRole = 'leader' | 'stage';

/** Wire codes of payload dtypes (header dtype, load.wire). */
export const DTYPE_CODES: Readonly<Record<PayloadDtype, number>> = { f32: 1, f16: 2 };
const FLAG_VERDICT = 1;

export type MeshMessage =
  | { type: 'level'; packet: LevelPacket }
  | { type: 'result'; packet: ResultPacket }
  | { type: 'config'; config: RequestConfig }
  /**
   * Leader -> every stage, on the ring just before `request`'s config: the request resumes an
   * interrupted one whose first `positions` positions were committed; keep what you hold of them.
   */
  | { type: 'keep'; request: number; positions: number }
  | { type: 'hello'; role: MeshRole; peer: string; name: string }
  /** Leader -> stage: your place in ring `ring` (an epoch of ring formation); prev/next are peer ids. */
  | { type: 'assign'; ring: number; index: number; count: number; prev: string; next: string }
  /** Stage -> leader: my links to prev and next for ring `ring` are up. */
  | { type: 'ready'; ring: number }
  | { type: 'ping'; seq: number; time: number }
  | { type: 'pong'; seq: number; time: number }
  | { type: 'error'; code: string; message: string }
  | { type: 'bye'; reason: string }
  /** Stage -> leader after joining: its adapter, measured matrix-vector GB/s, memory for weights + KV (0: unknown). */
  | { type: 'info'; device: string; gbps: number; memoryBytes: number }
  /**
   * Leader -> stage: load layers [start, end) of the model at modelUrl, with KV for numSlots slots;
   * send hidden states as `wire` and delay every message by hopDelayMs (the ring's simulated network);
   * emulate a dedicated device whose level takes at least stageFixedMs + stagePerRowMs * rows (0, 0: real time).
   */
  | { type: 'load'; load: number; modelUrl: string; start: number; end: number; embed: boolean; head: boolean; numSlots: number; wire: PayloadDtype; hopDelayMs: number; stageFixedMs: number; stagePerRowMs: number }
  /** Stage -> leader: bytes of weights fetched so far for load `load`. */
  | { type: 'progress'; load: number; done: number; total: number }
  /** Stage -> leader: load `load` finished (error '' when it worked). */
  | { type: 'loaded'; load: number; weightBytes: number; ms: number; error: string }
  /** Stage 1 -> leader: levels of `request` it has processed (flow control). */
  | { type: 'credit'; request: number; processed: number }
  /** Leader -> stage: send your stats for `request`. */
  | { type: 'query'; request: number }
  /** Stage -> leader: its work on `request` and the round trip of its link to the next node. */
  | {
      type: 'stats'; request: number; packets: number; rowsComputed: number; rowsDropped: number; busyMs: number; spanMs: number;
      nextRttP50Ms: number | null; nextRttP95Ms: number | null; nextRttSamples: number;
      /** Levels that computed rows, how many overran the emulated budget, and the median level's time (padding included). */
      levels: number; overruns: number; levelMsP50: number | null;
    }
  /** Stage -> leader: resumed `request` went past its kept positions; `kept` served from before, `prefilled` computed again, in `ms`. */
  | { type: 'resumed'; request: number; keep: number; kept: number; prefilled: number; ms: number };

export type MeshMessageType = MeshMessage['type'];

/** Allowed values of an f64 field (both ends reject anything else as 'bad-value'). */
export const RANGES = {
  finite: { ok: (v: number) => Number.isFinite(v), text: 'finite' },
  amount: { ok: (v: number) => Number.isFinite(v) && v >= 0, text: 'a finite number >= 0' },
  unit: { ok: (v: number) => v >= 0 && v <= 1, text: 'in [0, 1]' },
  'unit-open': { ok: (v: number) => v >= 0 && v < 1, text: 'in [0, 1)' },
} as const;
export type Range = keyof typeof RANGES;

/** How a u32s field's length travels (see the top of this file). */
export type Count = 'prefix' | 'rows' | 'ahead';

/** A field as protocol.ts and the fuzzer see it. */
export type WireField =
  | { kind: 'u32'; name: string }
  | { kind: 'f64'; name: string; range: Range }
  | { kind: 'f64?'; name: string; range: Range }
  | { kind: 'str'; name: string }
  | { kind: 'enum'; name: string; codes: Readonly<Record<string, number>> }
  | { kind: 'bits'; names: readonly string[] }
  /** The length of u32s field `name` (count 'ahead'), sent before it. */
  | { kind: 'len'; name: string }
  /** `below: 'rows'`: every entry is a row index (< the header's row count). */
  | { kind: 'u32s'; name: string; count: Count; max: number; below?: 'rows' }
  | { kind: 'records'; name: string; fields: readonly WireField[] }
  | { kind: 'option'; name: string; flag: number; fields: readonly WireField[] };
export type FieldKind = WireField['kind'];

/** A message type as protocol.ts sees it. */
export interface WireSchema {
  /** Type byte on the wire. */
  readonly code: number;
  /** Message key that holds the fields (level, result, config); other types carry them at the top. */
  readonly wrap?: 'packet' | 'config';
  /** Fields that travel in the header slot of the same name rather than in the metadata. */
  readonly header?: readonly HeaderSlot[];
  readonly fields: readonly WireField[];
  /** The f32/f16 payload, field `name`: a whole number of vectors, one per entry of list `per`. */
  readonly payload?: { readonly name: string; readonly per: string };
  /** A relation between fields (a message breaking it is 'inconsistent'): the complaint, or undefined. */
  invariant?(fields: object): string | undefined;
}

// ---------------------------------------------------------------- the table, checked against the message types

type Named<T, V> = { [K in keyof T & string]-?: [T[K]] extends [V] ? K : never }[keyof T & string];
type NullableNamed<T, V> = { [K in keyof T & string]-?: null extends T[K] ? ([NonNullable<T[K]>] extends [V] ? K : never) : never }[keyof T & string];

/** WireField with names, enum codes and nested fields checked against the fields' type T. */
type Field<T> =
  | { kind: 'u32'; name: Named<T, number> }
  | { kind: 'f64'; name: Named<T, number>; range: Range }
  | { kind: 'f64?'; name: NullableNamed<T, number>; range: Range }
  | { kind: 'str'; name: Named<T, string> }
  | { [K in Named<T, string>]: { kind: 'enum'; name: K; codes: Readonly<Record<T[K] & string, number>> } }[Named<T, string>]
  | { kind: 'bits'; names: readonly Named<T, boolean>[] }
  | { kind: 'len'; name: Named<T, readonly number[]> }
  | { kind: 'u32s'; name: Named<T, readonly number[]>; count: Count; max: number; below?: 'rows' }
  | { [K in Named<T, readonly object[]>]: { kind: 'records'; name: K; fields: readonly Field<T[K] extends readonly (infer E)[] ? E : never>[] } }[Named<T, readonly object[]>]
  | { [K in NullableNamed<T, object>]: { kind: 'option'; name: K; flag: number; fields: readonly Field<NonNullable<T[K]>>[] } }[NullableNamed<T, object>];

interface Schema<T extends object> extends WireSchema {
  readonly header?: readonly (HeaderSlot & Named<T, number>)[];
  readonly fields: readonly Field<T>[];
  readonly payload?: { readonly name: NullableNamed<T, Float32Array>; readonly per: Named<T, readonly unknown[]> };
  invariant?(fields: T): string | undefined;
}

type Body<T extends MeshMessageType> = T extends 'level'
  ? LevelPacket
  : T extends 'result'
    ? ResultPacket
    : T extends 'config'
      ? RequestConfig
      : Omit<Extract<MeshMessage, { type: T }>, 'type'>;

// Field constructors: literal names, checked against the message's type where the table uses them.
const u32 = <K extends string>(name: K) => ({ kind: 'u32', name }) as const;
const f64 = <K extends string>(name: K, range: Range) => ({ kind: 'f64', name, range }) as const;
const str = <K extends string>(name: K) => ({ kind: 'str', name }) as const;
const u32s = <K extends string>(name: K, count: Count, max: number) => ({ kind: 'u32s', name, count, max }) as const;
const amount = <K extends string>(name: K) => f64(name, 'amount');
const amountOrNull = <K extends string>(name: K) => ({ kind: 'f64?', name, range: 'amount' }) as const;

const timed = [u32('seq'), f64('time', 'finite')];

export const SCHEMAS: { readonly [T in MeshMessageType]: Schema<Body<T>> } = {
  level: {
    code: 1,
    wrap: 'packet',
    header: ['request', 'step', 'epoch'],
    fields: [
      {
        kind: 'option',
        name: 'verdict',
        flag: FLAG_VERDICT,
        fields: [
          u32('epoch'),
          { kind: 'len', name: 'commit' },
          { kind: 'len', name: 'release' },
          u32s('commit', 'ahead', LIMITS.maxListLength),
          u32s('release', 'ahead', LIMITS.maxListLength),
        ],
      },
      {
        kind: 'records',
        name: 'rows',
        fields: [u32('node'), u32('token'), u32('position'), u32('slot'), f64('uniform', 'unit-open'), u32s('ancestors', 'prefix', LIMITS.maxAncestors)],
      },
      { ...u32s('logitsRows', 'prefix', LIMITS.maxListLength), below: 'rows' },
    ],
    payload: { name: 'hidden', per: 'rows' },
  },
  result: {
    code: 2,
    wrap: 'packet',
    header: ['request', 'step', 'epoch'],
    // logitsRows index the level's rows, some of which may be missing from nodes (dropped): no `below`.
    fields: [u32s('nodes', 'rows', LIMITS.maxRows), u32s('tokens', 'rows', LIMITS.maxRows), u32s('logitsRows', 'prefix', LIMITS.maxListLength)],
    payload: { name: 'logits', per: 'logitsRows' },
  },
  config: { code: 3, wrap: 'config', header: ['request'], fields: [amount('temperature'), u32('topK'), f64('topP', 'unit')] },
  keep: { code: 4, fields: [u32('request'), u32('positions')] },
  hello: { code: 16, fields: [{ kind: 'enum', name: 'role', codes: { leader: 0, stage: 1 } }, str('peer'), str('name')] },
  assign: {
    code: 17,
    fields: [u32('ring'), u32('index'), u32('count'), str('prev'), str('next')],
    invariant: (m) => (m.index < m.count ? undefined : `assign index ${m.index} >= count ${m.count}`),
  },
  ready: { code: 18, fields: [u32('ring')] },
  ping: { code: 19, fields: timed },
  pong: { code: 20, fields: timed },
  error: { code: 21, fields: [str('code'), str('message')] },
  bye: { code: 22, fields: [str('reason')] },
  info: { code: 23, fields: [str('device'), amount('gbps'), amount('memoryBytes')] },
  load: {
    code: 24,
    fields: [
      u32('load'), u32('start'), u32('end'), u32('numSlots'), u32('hopDelayMs'),
      { kind: 'bits', names: ['embed', 'head'] }, { kind: 'enum', name: 'wire', codes: DTYPE_CODES }, str('modelUrl'),
      // Version 2: the emulated dedicated device's cost per level (both 0: real time).
      amount('stageFixedMs'), amount('stagePerRowMs'),
    ],
    invariant: (m) => (m.start < m.end ? undefined : `load of layers [${m.start}, ${m.end})`),
  },
  progress: { code: 25, fields: [u32('load'), amount('done'), amount('total')] },
  loaded: { code: 26, fields: [u32('load'), amount('weightBytes'), amount('ms'), str('error')] },
  credit: { code: 27, fields: [u32('request'), u32('processed')] },
  query: { code: 28, fields: [u32('request')] },
  stats: {
    code: 29,
    fields: [
      u32('request'), u32('packets'), u32('rowsComputed'), u32('rowsDropped'), u32('nextRttSamples'),
      amount('busyMs'), amount('spanMs'), amountOrNull('nextRttP50Ms'), amountOrNull('nextRttP95Ms'),
      // Version 2: emulated devices' overruns and the stage's time per level.
      u32('levels'), u32('overruns'), amountOrNull('levelMsP50'),
    ],
  },
  resumed: {
    code: 30,
    fields: [u32('request'), u32('keep'), u32('kept'), u32('prefilled'), amount('ms')],
    invariant: (m) => (m.kept + m.prefilled <= m.keep ? undefined : `resumed: ${m.kept} kept + ${m.prefilled} prefilled > ${m.keep} positions`),
  },
};

/** True for the field whose length is the header's row count (and for every other one bound to it). */
export const countsRows = (f: WireField): f is Extract<WireField, { kind: 'records' | 'u32s' }> => f.kind === 'records' || (f.kind === 'u32s' && f.count === 'rows');
