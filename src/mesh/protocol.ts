// The mesh wire protocol: one binary message per LevelPacket, ResultPacket, RequestConfig or small
// control message. What is on the wire is the table in protocol-schema.ts; this file interprets it.
// Encoding and decoding run the same per-kind codecs and the same checks, so the encoder never
// produces a message the decoder refuses, and every message the decoder accepts re-encodes to the
// same bytes (one encoding per message: zero padding, one NaN for an absent f64 or an f16 NaN).
// The decoder checks every count and length against what is left before reading it and throws
// ProtocolError, and nothing else, on anything invalid.

import type { LevelPacket, ResultPacket, RequestConfig } from '../pipeline/contract.ts';
import { SpecpipeError } from '../common/errors.ts';
import { f16IsNonFinite, f16ToF32Table, f32BitsToF16Bits } from '../common/numerics.ts';
import {
  countsRows,
  DTYPE_CODES,
  HEADER_BYTES,
  HEADER_LAYOUT,
  LIMITS,
  PROTOCOL_MAGIC,
  PROTOCOL_VERSION,
  RANGES,
  SCHEMAS,
  type HeaderWord,
  type MeshMessage,
  type MeshMessageType,
  type PayloadDtype,
  type WireField,
  type WireSchema,
} from './protocol-schema.ts';

export { HEADER_BYTES, LIMITS, PROTOCOL_MAGIC, PROTOCOL_VERSION } from './protocol-schema.ts';
export type { MeshMessage, MeshMessageType, MeshRole, PayloadDtype } from './protocol-schema.ts';

export type ProtocolErrorCode =
  | 'bad-magic'
  | 'bad-version'
  | 'bad-type'
  | 'truncated'
  | 'oversized'
  | 'inconsistent'
  | 'bad-value'
  /** A bug in the decoder surfaced as an unexpected exception (should never happen; the fuzz tests look for it). */
  | 'internal';

/** A message that is not valid in this protocol version: `code` 'protocol', `reason` says how. */
export class ProtocolError extends SpecpipeError {
  constructor(
    readonly reason: ProtocolErrorCode,
    message: string,
  ) {
    super('protocol', `${reason}: ${message}`);
  }
}

/** The only f16 NaN on the wire (the conversion of the f32 quiet NaN 0x7fc00000). */
const F16_NAN = 0x7e00;
/** An absent f64: the quiet NaN 0x7ff8000000000000, high word. */
const ABSENT_HIGH = 0x7ff80000;

const TYPE_NAMES = new Map<number, MeshMessageType>(Object.entries(SCHEMAS).map(([k, v]) => [v.code, k as MeshMessageType]));
const DTYPE_NAMES = new Map<number, PayloadDtype>(Object.entries(DTYPE_CODES).map(([k, v]) => [v, k as PayloadDtype]));
const elementBytes = (dtype: PayloadDtype): number => (dtype === 'f16' ? 2 : 4);
const utf8Encoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is part of the string, not a marker to drop (the bytes must re-encode the same).
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// ---------------------------------------------------------------- bytes

class Writer {
  private bytes = new Uint8Array(256);
  private view = new DataView(this.bytes.buffer);
  length = 0;
  private need(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    let cap = this.bytes.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.need(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }
  u32(v: number): void {
    this.need(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  f64(v: number): void {
    this.need(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
  }
  str(s: string, what: string): void {
    const b = utf8Encoder.encode(s);
    if (b.length > LIMITS.maxStringBytes) throw new ProtocolError('oversized', `${what} of ${b.length} bytes`);
    this.need(2 + b.length);
    this.view.setUint16(this.length, b.length, true);
    this.bytes.set(b, this.length + 2);
    this.length += 2 + b.length;
  }
  pad4(): void {
    while (this.length % 4) this.u8(0);
  }
  result(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }
}

class Reader {
  private readonly view: DataView;
  private pos: number;
  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    private readonly end: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
  }
  private get left(): number {
    return this.end - this.pos;
  }
  private need(n: number, what: string): void {
    if (n > this.left) throw new ProtocolError('truncated', `${what} needs ${n} bytes, ${this.left} left in metadata`);
  }
  /** Checks a count against its limit and n × elementBytes against what is left, before anything is read or allocated. */
  reserve(n: number, max: number, elementBytes: number, what: string): void {
    if (n > max) throw new ProtocolError('oversized', `${what} count ${n} > ${max}`);
    this.need(n * elementBytes, what);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.view.getUint8(this.pos++);
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f64(what: string): number {
    this.need(8, what);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }
  /** The absent marker is one bit pattern: any other NaN would decode to null and re-encode differently. */
  isAbsent(what: string): boolean {
    this.need(8, what);
    return this.view.getUint32(this.pos, true) === 0 && this.view.getUint32(this.pos + 4, true) === ABSENT_HIGH;
  }
  u32Array(n: number, what: string): number[] {
    this.need(n * 4, what);
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++) out[i] = this.view.getUint32(this.pos + 4 * i, true);
    this.pos += 4 * n;
    return out;
  }
  str(what: string): string {
    this.need(2, `${what} length`);
    const n = this.view.getUint16(this.pos, true);
    this.pos += 2;
    this.reserve(n, LIMITS.maxStringBytes, 1, what);
    const b = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    try {
      return utf8Decoder.decode(b);
    } catch {
      throw new ProtocolError('bad-value', `${what} is not valid UTF-8`);
    }
  }
  /** Metadata must end here, up to 3 zero bytes of padding. */
  finish(): void {
    if (this.left > 3) throw new ProtocolError('inconsistent', `${this.left} unread metadata bytes`);
    while (this.pos < this.end) {
      if (this.view.getUint8(this.pos++) !== 0) throw new ProtocolError('inconsistent', 'non-zero metadata padding');
    }
  }
}

// ---------------------------------------------------------------- values (the encoder's input is checked as strictly as the decoder's)

type Fields = Record<string, unknown>;

function badValue(what: string, v: unknown, wanted: string): ProtocolError {
  return new ProtocolError('bad-value', `${what} must be ${wanted}, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`);
}
function u32Of(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw badValue(what, v, 'a u32');
  return v;
}
function inRange(f: Extract<WireField, { range: unknown }>, v: unknown, what: string): number {
  const range = RANGES[f.range];
  if (typeof v !== 'number' || !range.ok(v)) throw badValue(what, v, range.text);
  return v;
}
function stringOf(v: unknown, what: string): string {
  if (typeof v !== 'string') throw badValue(what, v, 'a string');
  return v;
}
function listOf(v: unknown, what: string): readonly unknown[] {
  if (!Array.isArray(v)) throw badValue(what, v, 'an array');
  return v;
}
function fieldsOf(v: unknown, what: string): Fields {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badValue(what, v, 'an object');
  return v as Fields;
}
function checkBelow(f: Extract<WireField, { kind: 'u32s' }>, list: readonly number[], rows: number, what: string): void {
  if (f.below) for (const i of list) if (i >= rows) throw new ProtocolError('inconsistent', `${what} index ${i} >= ${rows} rows`);
}
function checkRowCount(n: number, rows: number, what: string): void {
  if (n !== rows) throw new ProtocolError('inconsistent', `${rows} rows but ${n} ${what}`);
}

// ---------------------------------------------------------------- one codec per field kind

/** What fields see of their message: the header row count and flags, and counts sent 'ahead'. */
interface Context {
  rows: number;
  flags: number;
  ahead: Map<string, number>;
  /** Encoding with traceMessage: where each field landed. */
  spans?: FieldSpan[];
}

/** Where one field of an encoded message lies: bytes [start, end) of the whole message. */
export interface FieldSpan {
  field: WireField;
  /** Dotted name ('rows.ancestors'; bits fields: their names joined with '+'). */
  path: string;
  start: number;
  end: number;
}

/** Reads and writes one kind of field; `what` is the field's path, for messages. */
interface Codec<F extends WireField> {
  /** The fewest metadata bytes the field can take (to check a row count before reading rows). */
  minBytes(f: F): number;
  write(w: Writer, f: F, m: Fields, ctx: Context, what: string): void;
  read(r: Reader, f: F, m: Fields, ctx: Context, what: string): void;
}
type Codecs = { [K in WireField['kind']]: Codec<Extract<WireField, { kind: K }>> };

const CODECS: Codecs = {
  u32: {
    minBytes: () => 4,
    write: (w, f, m, _ctx, what) => w.u32(u32Of(m[f.name], what)),
    read: (r, f, m, _ctx, what) => void (m[f.name] = r.u32(what)),
  },
  f64: {
    minBytes: () => 8,
    write: (w, f, m, _ctx, what) => w.f64(inRange(f, m[f.name], what)),
    read: (r, f, m, _ctx, what) => void (m[f.name] = inRange(f, r.f64(what), what)),
  },
  'f64?': {
    minBytes: () => 8,
    write: (w, f, m, _ctx, what) => {
      const v = m[f.name];
      if (v !== null) return w.f64(inRange(f, v, what));
      w.u32(0);
      w.u32(ABSENT_HIGH);
    },
    read: (r, f, m, _ctx, what) => {
      const absent = r.isAbsent(what);
      const v = r.f64(what);
      m[f.name] = absent ? null : inRange(f, v, what);
    },
  },
  str: {
    minBytes: () => 2,
    write: (w, f, m, _ctx, what) => w.str(stringOf(m[f.name], what), what),
    read: (r, f, m, _ctx, what) => void (m[f.name] = r.str(what)),
  },
  enum: {
    minBytes: () => 1,
    write: (w, f, m, _ctx, what) => {
      const v = m[f.name];
      if (typeof v !== 'string' || !Object.hasOwn(f.codes, v)) throw badValue(what, v, `one of ${Object.keys(f.codes).join(', ')}`);
      w.u8(f.codes[v]);
    },
    read: (r, f, m, _ctx, what) => {
      const code = r.u8(what);
      const v = Object.keys(f.codes).find((k) => f.codes[k] === code);
      if (v === undefined) throw new ProtocolError('bad-value', `${what} code ${code}`);
      m[f.name] = v;
    },
  },
  bits: {
    minBytes: () => 1,
    write: (w, f, m, _ctx, what) =>
      w.u8(
        f.names.reduce((bits, name, i) => {
          const v = m[name];
          if (typeof v !== 'boolean') throw badValue(`${what}.${name}`, v, 'a boolean');
          return bits | (Number(v) << i);
        }, 0),
      ),
    read: (r, f, m, _ctx, what) => {
      const bits = r.u8(what);
      if (bits >>> f.names.length) throw new ProtocolError('bad-value', `${what} bits 0x${bits.toString(16)}`);
      f.names.forEach((name, i) => (m[name] = ((bits >>> i) & 1) === 1));
    },
  },
  len: {
    minBytes: () => 4,
    write: (w, f, m, _ctx, what) => w.u32(listOf(m[f.name], what).length),
    read: (r, f, _m, ctx, what) => void ctx.ahead.set(f.name, r.u32(`${what} count`)),
  },
  u32s: {
    minBytes: (f) => (f.count === 'prefix' ? 4 : 0),
    write: (w, f, m, ctx, what) => {
      const list = listOf(m[f.name], what).map((v) => u32Of(v, what));
      if (list.length > f.max) throw new ProtocolError('oversized', `${what} has ${list.length} entries > ${f.max}`);
      if (f.count === 'rows') checkRowCount(list.length, ctx.rows, what);
      checkBelow(f, list, ctx.rows, what);
      if (f.count === 'prefix') w.u32(list.length);
      for (const v of list) w.u32(v);
    },
    read: (r, f, m, ctx, what) => {
      const n = f.count === 'prefix' ? r.u32(`${what} count`) : f.count === 'rows' ? ctx.rows : (ctx.ahead.get(f.name) ?? 0);
      r.reserve(n, f.max, 4, what);
      const list = r.u32Array(n, what);
      checkBelow(f, list, ctx.rows, what);
      m[f.name] = list;
    },
  },
  records: {
    minBytes: () => 0,
    write: (w, f, m, ctx, what) => {
      const list = listOf(m[f.name], what);
      checkRowCount(list.length, ctx.rows, what);
      for (const rec of list) writeFields(w, f.fields, fieldsOf(rec, what), ctx);
    },
    read: (r, f, m, ctx, what) => {
      r.reserve(ctx.rows, LIMITS.maxRows, minBytes(f.fields), what);
      m[f.name] = Array.from({ length: ctx.rows }, () => readFields(r, f.fields, {}, ctx));
    },
  },
  option: {
    minBytes: () => 0,
    write: (w, f, m, ctx, what) => {
      const v = m[f.name];
      if (v === null) return;
      ctx.flags |= f.flag;
      writeFields(w, f.fields, fieldsOf(v, what), ctx);
    },
    read: (r, f, m, ctx) => void (m[f.name] = ctx.flags & f.flag ? readFields(r, f.fields, {}, ctx) : null),
  },
};

// TypeScript cannot correlate a field's kind with its codec's parameter type; the table's type does.
const codecOf = <F extends WireField>(f: F): Codec<F> => CODECS[f.kind] as unknown as Codec<F>;
const minBytes = (fields: readonly WireField[]): number => fields.reduce((n, f) => n + codecOf(f).minBytes(f), 0);

/** Every field's dotted path, built once rather than per row. */
const PATHS = new Map<WireField, string>();
(function walk(fields: readonly WireField[], prefix: string): void {
  for (const f of fields) {
    const path = prefix + (f.kind === 'bits' ? f.names.join('+') : f.name);
    PATHS.set(f, path);
    if (f.kind === 'records' || f.kind === 'option') walk(f.fields, `${path}.`);
  }
})(Object.values(SCHEMAS).flatMap((s: WireSchema) => s.fields), '');
const pathOf = (f: WireField): string => PATHS.get(f) ?? '?';

function writeFields(w: Writer, fields: readonly WireField[], m: Fields, ctx: Context): void {
  for (const f of fields) {
    const start = w.length;
    codecOf(f).write(w, f, m, ctx, pathOf(f));
    ctx.spans?.push({ field: f, path: pathOf(f), start: HEADER_BYTES + start, end: HEADER_BYTES + w.length });
  }
}

function readFields(r: Reader, fields: readonly WireField[], m: Fields, ctx: Context): Fields {
  for (const f of fields) codecOf(f).read(r, f, m, ctx, pathOf(f));
  return m;
}

// ---------------------------------------------------------------- whole messages: the checks both ends share

function schemaOf(type: string): WireSchema {
  if (!Object.hasOwn(SCHEMAS, type)) throw new ProtocolError('bad-type', `unknown message type ${JSON.stringify(type)}`);
  return SCHEMAS[type as MeshMessageType];
}

/** The payload, which must be a whole number of vectors, one per entry of list `per`. */
function checkPayload(s: WireSchema, m: Fields): Float32Array | null {
  if (!s.payload) return null;
  const payload = m[s.payload.name];
  if (payload === null) return null;
  if (!(payload instanceof Float32Array)) throw badValue(s.payload.name, payload, 'a Float32Array or null');
  const n = listOf(m[s.payload.per], s.payload.per).length;
  if (n === 0 ? payload.length !== 0 : payload.length % n !== 0) {
    throw new ProtocolError('inconsistent', `${s.payload.name} length ${payload.length} is not a multiple of ${n} ${s.payload.per}`);
  }
  return payload;
}

function checkInvariant(s: WireSchema, m: Fields): void {
  const complaint = s.invariant?.(m);
  if (complaint !== undefined) throw new ProtocolError('inconsistent', complaint);
}

// ---------------------------------------------------------------- encode

export interface EncodeOptions {
  /** Wire dtype of the payload (hidden states or logits). Default 'f32'. */
  dtype?: PayloadDtype;
}

function encode(msg: MeshMessage, opts: EncodeOptions, spans?: FieldSpan[]): Uint8Array {
  const s = schemaOf(msg.type);
  const m = fieldsOf(s.wrap ? (msg as Fields)[s.wrap] : msg, msg.type);
  const rowField = s.fields.find(countsRows);
  const ctx: Context = { rows: rowField ? listOf(m[rowField.name], rowField.name).length : 0, flags: 0, ahead: new Map(), spans };
  if (ctx.rows > LIMITS.maxRows) throw new ProtocolError('oversized', `${ctx.rows} rows > ${LIMITS.maxRows}`);
  const meta = new Writer();
  writeFields(meta, s.fields, m, ctx);
  meta.pad4();
  const payload = checkPayload(s, m);
  checkInvariant(s, m);

  const dtype = payload ? (opts.dtype ?? 'f32') : null;
  const payloadBytes = payload && dtype ? payload.length * elementBytes(dtype) : 0;
  const total = HEADER_BYTES + meta.length + payloadBytes;
  if (total > LIMITS.maxMessageBytes) throw new ProtocolError('oversized', `message of ${total} bytes`);

  const words: Record<HeaderWord, number> = {
    magic: PROTOCOL_MAGIC,
    version: PROTOCOL_VERSION,
    type: s.code,
    dtype: dtype ? DTYPE_CODES[dtype] : 0,
    flags: ctx.flags,
    request: 0,
    step: 0,
    epoch: 0,
    rows: ctx.rows,
    metaBytes: meta.length,
    payloadBytes,
  };
  for (const slot of s.header ?? []) words[slot] = u32Of(m[slot], slot);

  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  for (const { name, at, bytes } of HEADER_LAYOUT) {
    if (bytes === 1) view.setUint8(at, words[name]);
    else view.setUint32(at, words[name], true);
  }
  out.set(meta.result(), HEADER_BYTES);
  const at = HEADER_BYTES + meta.length;
  if (payload && dtype === 'f32') new Float32Array(out.buffer, at, payload.length).set(payload);
  if (payload && dtype === 'f16') {
    // From the f32 bit patterns (no round trip through doubles); every NaN becomes F16_NAN. Typed
    // arrays assume a little-endian host, as the f32 path does.
    const bits = new Uint32Array(payload.buffer, payload.byteOffset, payload.length);
    const half = new Uint16Array(out.buffer, at, payload.length);
    for (let i = 0; i < half.length; i++) {
      const h = f32BitsToF16Bits(bits[i]);
      half[i] = f16IsNonFinite(h) && h & 0x3ff ? F16_NAN : h;
    }
  }
  return out;
}

export function encodeMessage(msg: MeshMessage, opts: EncodeOptions = {}): Uint8Array {
  return encode(msg, opts);
}

/** Encodes like encodeMessage and says where every field landed (the fuzzer mutates them one by one). */
export function traceMessage(msg: MeshMessage, opts: EncodeOptions = {}): { bytes: Uint8Array; spans: FieldSpan[] } {
  const spans: FieldSpan[] = [];
  return { bytes: encode(msg, opts, spans), spans };
}

// ---------------------------------------------------------------- decode

export interface MessageHeader {
  version: number;
  type: MeshMessageType;
  dtype: PayloadDtype | null;
  flags: number;
  request: number;
  step: number;
  epoch: number;
  rows: number;
  metaBytes: number;
  payloadBytes: number;
}

export interface DecodeOptions {
  /** Reject messages longer than this (default LIMITS.maxMessageBytes). */
  maxBytes?: number;
}

/** Reads the fixed header and checks it against the message length and its type's schema. */
export function decodeHeader(bytes: Uint8Array, opts: DecodeOptions = {}): MessageHeader {
  const maxBytes = opts.maxBytes ?? LIMITS.maxMessageBytes;
  if (bytes.length < HEADER_BYTES) throw new ProtocolError('truncated', `message of ${bytes.length} bytes is shorter than the ${HEADER_BYTES}-byte header`);
  if (bytes.length > maxBytes) throw new ProtocolError('oversized', `message of ${bytes.length} bytes > ${maxBytes}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const w = Object.fromEntries(HEADER_LAYOUT.map(({ name, at, bytes: n }) => [name, n === 1 ? view.getUint8(at) : view.getUint32(at, true)])) as Record<HeaderWord, number>;

  if (w.magic !== PROTOCOL_MAGIC) throw new ProtocolError('bad-magic', `magic 0x${w.magic.toString(16)} is not 'SPM1'`);
  if (w.version !== PROTOCOL_VERSION) {
    throw new ProtocolError('bad-version', `protocol version ${w.version}, this build speaks version ${PROTOCOL_VERSION}`);
  }
  const type = TYPE_NAMES.get(w.type);
  if (!type) throw new ProtocolError('bad-type', `unknown message type ${w.type}`);
  const s: WireSchema = SCHEMAS[type];
  const dtype = DTYPE_NAMES.get(w.dtype) ?? null;
  if (w.dtype !== 0 && !dtype) throw new ProtocolError('bad-value', `unknown payload dtype ${w.dtype}`);
  const flags = s.fields.reduce((bits, f) => (f.kind === 'option' ? bits | f.flag : bits), 0);
  if (w.flags & ~flags) throw new ProtocolError('bad-value', `unknown flags 0x${w.flags.toString(16)} on ${type}`);
  if (w.rows > LIMITS.maxRows) throw new ProtocolError('oversized', `${w.rows} rows > ${LIMITS.maxRows}`);
  if (w.metaBytes % 4) throw new ProtocolError('inconsistent', `metadata length ${w.metaBytes} is not a multiple of 4`);
  const expected = HEADER_BYTES + w.metaBytes + w.payloadBytes;
  if (expected > bytes.length) throw new ProtocolError('truncated', `header announces ${expected} bytes, message has ${bytes.length}`);
  if (expected < bytes.length) throw new ProtocolError('inconsistent', `header announces ${expected} bytes, message has ${bytes.length}`);
  if (!dtype && w.payloadBytes !== 0) throw new ProtocolError('inconsistent', 'payload without a dtype');
  if (dtype && w.payloadBytes % elementBytes(dtype)) {
    throw new ProtocolError('inconsistent', `payload of ${w.payloadBytes} bytes is not a whole number of ${dtype}`);
  }
  if (dtype && !s.payload) throw new ProtocolError('inconsistent', `${type} message with a payload`);
  if (w.rows !== 0 && !s.fields.some(countsRows)) throw new ProtocolError('inconsistent', `${type} message with rows`);
  for (const slot of ['request', 'step', 'epoch'] as const) {
    if (w[slot] !== 0 && !s.header?.includes(slot)) throw new ProtocolError('inconsistent', `${type} message with a ${slot}`);
  }
  const { version, request, step, epoch, rows, metaBytes, payloadBytes } = w;
  return { version, type, dtype, flags: w.flags, request, step, epoch, rows, metaBytes, payloadBytes };
}

function readPayload(bytes: Uint8Array, h: MessageHeader): Float32Array | null {
  if (!h.dtype) return null;
  const at = bytes.byteOffset + HEADER_BYTES + h.metaBytes;
  if (h.dtype === 'f32') {
    const n = h.payloadBytes / 4;
    // Zero-copy when aligned (the framing layer hands out fresh, aligned buffers); copy otherwise.
    if (at % 4 === 0) return new Float32Array(bytes.buffer, at, n);
    return new Float32Array(bytes.slice(HEADER_BYTES + h.metaBytes).buffer);
  }
  const view = new DataView(bytes.buffer, at, h.payloadBytes);
  const table = f16ToF32Table();
  const out = new Float32Array(h.payloadBytes / 2);
  for (let i = 0; i < out.length; i++) {
    const bits = view.getUint16(2 * i, true);
    if (f16IsNonFinite(bits) && bits & 0x3ff && bits !== F16_NAN) throw new ProtocolError('bad-value', `f16 NaN 0x${bits.toString(16)} in the payload (only 0x7e00 is sent)`);
    out[i] = table[bits];
  }
  return out;
}

function decodeBody(bytes: Uint8Array, h: MessageHeader): MeshMessage {
  const s: WireSchema = SCHEMAS[h.type];
  const m: Fields = {};
  for (const slot of s.header ?? []) m[slot] = h[slot];
  const r = new Reader(bytes, HEADER_BYTES, HEADER_BYTES + h.metaBytes);
  readFields(r, s.fields, m, { rows: h.rows, flags: h.flags, ahead: new Map() });
  r.finish();
  if (s.payload) m[s.payload.name] = readPayload(bytes, h);
  checkPayload(s, m);
  checkInvariant(s, m);
  // The schema table is typed against MeshMessage, so these fields make a message of type h.type.
  return (s.wrap ? { type: h.type, [s.wrap]: m } : { type: h.type, ...m }) as MeshMessage;
}

/**
 * Decodes one message. Throws ProtocolError (and nothing else) when the bytes are not a valid
 * message of this protocol version. A decoded f32 payload may be a view into `bytes`.
 */
export function decodeMessage(bytes: Uint8Array, opts: DecodeOptions = {}): MeshMessage {
  try {
    return decodeBody(bytes, decodeHeader(bytes, opts));
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError('internal', `decoder failure: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Type of a message without decoding the body (cheap routing); throws ProtocolError on a bad header. */
export function peekType(bytes: Uint8Array): MeshMessageType {
  return decodeHeader(bytes).type;
}

// Convenience wrappers.
export const encodeLevel = (packet: LevelPacket, opts?: EncodeOptions): Uint8Array => encodeMessage({ type: 'level', packet }, opts);
export const encodeResult = (packet: ResultPacket, opts?: EncodeOptions): Uint8Array => encodeMessage({ type: 'result', packet }, opts);
export const encodeConfig = (config: RequestConfig): Uint8Array => encodeMessage({ type: 'config', config });
