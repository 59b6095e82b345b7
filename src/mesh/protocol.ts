// The mesh wire protocol: one binary message per LevelPacket, ResultPacket, RequestConfig or small
// control message. Little-endian throughout.
//
// Header (32 bytes):
//   0  u32 magic 'SPM1'        4  u8 version   5  u8 type   6  u8 dtype (0 none, 1 f32, 2 f16)
//   7  u8 flags (bit 0: level carries a verdict)
//   8  u32 request   12 u32 step   16 u32 epoch   20 u32 row count
//   24 u32 meta length (bytes, a multiple of 4)   28 u32 payload length (bytes)
// then `meta length` bytes of metadata (layout per type, zero-padded to 4 bytes), then the payload.
// The message length must equal 32 + meta + payload exactly. The decoder checks every count and
// length against what is left before reading it and throws ProtocolError otherwise.
//
// Level meta:  [verdict: epoch u32, commit n u32, release n u32, commit u32[n], release u32[n]]
//              rows × (node u32, token u32, position u32, slot u32, uniform f64, ancestors n u32, u32[n])
//              logitsRows n u32, u32[n]
//   payload:   hidden [rows × hidden] (f32 or f16 on the wire; always Float32Array decoded)
// Result meta: nodes u32[rows], tokens u32[rows], logitsRows n u32, u32[n]
//   payload:   logits [logitsRows × vocab]
// Config meta: temperature f64, topK u32, topP f64 (header request = config.request)
// Control:     strings are u16 byte length + UTF-8; numbers that may be absent are f64 NaN.
// Stage work (direct lane, leader <-> stage): info, load, progress, loaded, credit, query, stats;
// their request ids live in the metadata (the header's request field is the level/config one).

import type { LevelPacket, ResultPacket, RequestConfig, RowMeta, Verdict } from '../pipeline/contract.ts';
import { f16BitsToF32, f32ToF16Bits } from '../common/numerics.ts';

export const PROTOCOL_MAGIC = 0x314d5053; // bytes 'S' 'P' 'M' '1'
export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 32;

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

export type MeshMessage =
  | { type: 'level'; packet: LevelPacket }
  | { type: 'result'; packet: ResultPacket }
  | { type: 'config'; config: RequestConfig }
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
   * send hidden states as `wire` and delay every message by hopDelayMs (the ring's simulated network).
   */
  | { type: 'load'; load: number; modelUrl: string; start: number; end: number; embed: boolean; head: boolean; numSlots: number; wire: PayloadDtype; hopDelayMs: number }
  /** Stage -> leader: bytes of weights fetched so far for load `load`. */
  | { type: 'progress'; load: number; done: number; total: number }
  /** Stage -> leader: load `load` finished (error '' when it worked). */
  | { type: 'loaded'; load: number; weightBytes: number; ms: number; error: string }
  /** Stage 1 -> leader: levels of `request` it has processed (flow control). */
  | { type: 'credit'; request: number; processed: number }
  /** Leader -> stage: send your stats for `request`. */
  | { type: 'query'; request: number }
  /** Stage -> leader: its work on `request` and the round trip of its link to the next node. */
  | { type: 'stats'; request: number; packets: number; rowsComputed: number; rowsDropped: number; busyMs: number; spanMs: number; nextRttP50Ms: number | null; nextRttP95Ms: number | null; nextRttSamples: number };

export type MeshMessageType = MeshMessage['type'];

const TYPE_CODES: Record<MeshMessageType, number> = {
  level: 1,
  result: 2,
  config: 3,
  hello: 16,
  assign: 17,
  ready: 18,
  ping: 19,
  pong: 20,
  error: 21,
  bye: 22,
  info: 23,
  load: 24,
  progress: 25,
  loaded: 26,
  credit: 27,
  query: 28,
  stats: 29,
};
const TYPE_NAMES = new Map<number, MeshMessageType>(
  Object.entries(TYPE_CODES).map(([k, v]) => [v, k as MeshMessageType]),
);
const DTYPE_NONE = 0;
const DTYPE_F32 = 1;
const DTYPE_F16 = 2;
const FLAG_VERDICT = 1;

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

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

// ---------------------------------------------------------------- writer

class Writer {
  private buf: ArrayBuffer;
  private view: DataView;
  private bytes: Uint8Array;
  length = 0;
  constructor(capacity = 256) {
    this.buf = new ArrayBuffer(capacity);
    this.view = new DataView(this.buf);
    this.bytes = new Uint8Array(this.buf);
  }
  private need(n: number): void {
    if (this.length + n <= this.buf.byteLength) return;
    let cap = this.buf.byteLength * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new ArrayBuffer(cap);
    new Uint8Array(next).set(this.bytes.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next);
    this.bytes = new Uint8Array(next);
  }
  u8(v: number): void {
    this.need(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }
  u16(v: number): void {
    this.need(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
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
  u32s(list: readonly number[]): void {
    this.u32(list.length);
    for (const v of list) this.u32(v);
  }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    if (b.length > LIMITS.maxStringBytes) throw new ProtocolError('oversized', `string of ${b.length} bytes`);
    this.u16(b.length);
    this.need(b.length);
    this.bytes.set(b, this.length);
    this.length += b.length;
  }
  pad4(): void {
    while (this.length % 4) this.u8(0);
  }
  result(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }
}

// ---------------------------------------------------------------- reader

class Reader {
  private readonly view: DataView;
  pos: number;
  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    private readonly end: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
  }
  get left(): number {
    return this.end - this.pos;
  }
  private need(n: number, what: string): void {
    if (n > this.left) throw new ProtocolError('truncated', `${what} needs ${n} bytes, ${this.left} left in metadata`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.view.getUint8(this.pos++);
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
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
  count(what: string, max: number, elementBytes: number): number {
    const n = this.u32(`${what} count`);
    if (n > max) throw new ProtocolError('oversized', `${what} count ${n} > ${max}`);
    this.need(n * elementBytes, what);
    return n;
  }
  u32Array(n: number, what: string): number[] {
    this.need(n * 4, what);
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++) out[i] = this.view.getUint32(this.pos + 4 * i, true);
    this.pos += 4 * n;
    return out;
  }
  u32s(what: string, max: number = LIMITS.maxListLength): number[] {
    return this.u32Array(this.count(what, max, 4), what);
  }
  str(what: string): string {
    const n = this.u16(`${what} length`);
    if (n > LIMITS.maxStringBytes) throw new ProtocolError('oversized', `${what} of ${n} bytes`);
    this.need(n, what);
    const b = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
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

// ---------------------------------------------------------------- validation helpers

function checkU32(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new ProtocolError('bad-value', `${what} must be a u32, got ${v}`);
}
function checkU32s(list: readonly number[], what: string): void {
  if (list.length > LIMITS.maxListLength) throw new ProtocolError('oversized', `${what} has ${list.length} entries`);
  for (const v of list) checkU32(v, what);
}
function checkUniform(u: number): void {
  if (!(u >= 0 && u < 1)) throw new ProtocolError('bad-value', `row uniform must be in [0,1), got ${u}`);
}
function checkConfig(c: RequestConfig): void {
  checkU32(c.request, 'config.request');
  checkU32(c.topK, 'config.topK');
  if (!(Number.isFinite(c.temperature) && c.temperature >= 0)) throw new ProtocolError('bad-value', `temperature ${c.temperature}`);
  if (!(c.topP >= 0 && c.topP <= 1)) throw new ProtocolError('bad-value', `topP ${c.topP}`);
}
function checkIndices(list: readonly number[], bound: number, what: string): void {
  for (const i of list) if (i >= bound) throw new ProtocolError('inconsistent', `${what} index ${i} >= ${bound}`);
}
function checkTime(t: number, what: string): void {
  if (!Number.isFinite(t)) throw new ProtocolError('bad-value', `${what} must be finite`);
}
function checkAmount(v: number, what: string): void {
  if (!(Number.isFinite(v) && v >= 0)) throw new ProtocolError('bad-value', `${what} must be a finite number >= 0, got ${v}`);
}
function checkOptionalAmount(v: number | null, what: string): void {
  if (v !== null) checkAmount(v, what);
}
function checkLoad(m: Extract<MeshMessage, { type: 'load' }>): void {
  for (const k of ['load', 'start', 'end', 'numSlots', 'hopDelayMs'] as const) checkU32(m[k], `load.${k}`);
  if (m.start >= m.end) throw new ProtocolError('inconsistent', `load of layers [${m.start}, ${m.end})`);
}
const WIRE_CODES: Record<PayloadDtype, number> = { f32: 1, f16: 2 };

// ---------------------------------------------------------------- encode

export interface EncodeOptions {
  /** Wire dtype of the payload (hidden states or logits). Default 'f32'. */
  dtype?: PayloadDtype;
}

export function encodeMessage(msg: MeshMessage, opts: EncodeOptions = {}): Uint8Array {
  const meta = new Writer();
  let request = 0;
  let step = 0;
  let epoch = 0;
  let rows = 0;
  let flags = 0;
  let payload: Float32Array | null = null;

  switch (msg.type) {
    case 'level': {
      const p = msg.packet;
      request = p.request;
      step = p.step;
      epoch = p.epoch;
      rows = p.rows.length;
      if (rows > LIMITS.maxRows) throw new ProtocolError('oversized', `${rows} rows`);
      if (p.verdict) {
        flags |= FLAG_VERDICT;
        checkU32(p.verdict.epoch, 'verdict.epoch');
        checkU32s(p.verdict.commit, 'verdict.commit');
        checkU32s(p.verdict.release, 'verdict.release');
        meta.u32(p.verdict.epoch);
        meta.u32(p.verdict.commit.length);
        meta.u32(p.verdict.release.length);
        for (const v of p.verdict.commit) meta.u32(v);
        for (const v of p.verdict.release) meta.u32(v);
      }
      for (const r of p.rows) {
        for (const k of ['node', 'token', 'position', 'slot'] as const) checkU32(r[k], `row.${k}`);
        checkUniform(r.uniform);
        if (r.ancestors.length > LIMITS.maxAncestors) throw new ProtocolError('oversized', `${r.ancestors.length} ancestors`);
        checkU32s(r.ancestors, 'row.ancestors');
        meta.u32(r.node);
        meta.u32(r.token);
        meta.u32(r.position);
        meta.u32(r.slot);
        meta.f64(r.uniform);
        meta.u32s(r.ancestors);
      }
      checkU32s(p.logitsRows, 'logitsRows');
      checkIndices(p.logitsRows, rows, 'logitsRows');
      meta.u32s(p.logitsRows);
      payload = p.hidden;
      if (payload && (rows === 0 ? payload.length !== 0 : payload.length % rows !== 0)) {
        throw new ProtocolError('inconsistent', `hidden length ${payload.length} is not a multiple of ${rows} rows`);
      }
      break;
    }
    case 'result': {
      const p = msg.packet;
      request = p.request;
      step = p.step;
      epoch = p.epoch;
      rows = p.nodes.length;
      if (rows > LIMITS.maxRows) throw new ProtocolError('oversized', `${rows} rows`);
      if (p.tokens.length !== rows) throw new ProtocolError('inconsistent', `${rows} nodes but ${p.tokens.length} tokens`);
      checkU32s(p.nodes, 'nodes');
      checkU32s(p.tokens, 'tokens');
      checkU32s(p.logitsRows, 'logitsRows');
      for (const v of p.nodes) meta.u32(v);
      for (const v of p.tokens) meta.u32(v);
      meta.u32s(p.logitsRows);
      payload = p.logits;
      const n = p.logitsRows.length;
      if (payload && (n === 0 ? payload.length !== 0 : payload.length % n !== 0)) {
        throw new ProtocolError('inconsistent', `logits length ${payload.length} is not a multiple of ${n} rows`);
      }
      break;
    }
    case 'config':
      checkConfig(msg.config);
      request = msg.config.request;
      meta.f64(msg.config.temperature);
      meta.u32(msg.config.topK);
      meta.f64(msg.config.topP);
      break;
    case 'hello':
      meta.u8(msg.role === 'leader' ? 0 : 1);
      meta.str(msg.peer);
      meta.str(msg.name);
      break;
    case 'assign':
      for (const k of ['ring', 'index', 'count'] as const) checkU32(msg[k], `assign.${k}`);
      meta.u32(msg.ring);
      meta.u32(msg.index);
      meta.u32(msg.count);
      meta.str(msg.prev);
      meta.str(msg.next);
      break;
    case 'ready':
      checkU32(msg.ring, 'ready.ring');
      meta.u32(msg.ring);
      break;
    case 'ping':
    case 'pong':
      checkU32(msg.seq, `${msg.type}.seq`);
      checkTime(msg.time, `${msg.type}.time`);
      meta.u32(msg.seq);
      meta.f64(msg.time);
      break;
    case 'error':
      meta.str(msg.code);
      meta.str(msg.message);
      break;
    case 'bye':
      meta.str(msg.reason);
      break;
    case 'info':
      checkAmount(msg.gbps, 'info.gbps');
      checkAmount(msg.memoryBytes, 'info.memoryBytes');
      meta.str(msg.device);
      meta.f64(msg.gbps);
      meta.f64(msg.memoryBytes);
      break;
    case 'load':
      checkLoad(msg);
      meta.u32(msg.load);
      meta.u32(msg.start);
      meta.u32(msg.end);
      meta.u32(msg.numSlots);
      meta.u32(msg.hopDelayMs);
      meta.u8((msg.embed ? 1 : 0) | (msg.head ? 2 : 0));
      meta.u8(WIRE_CODES[msg.wire]);
      meta.str(msg.modelUrl);
      break;
    case 'progress':
      checkU32(msg.load, 'progress.load');
      checkAmount(msg.done, 'progress.done');
      checkAmount(msg.total, 'progress.total');
      meta.u32(msg.load);
      meta.f64(msg.done);
      meta.f64(msg.total);
      break;
    case 'loaded':
      checkU32(msg.load, 'loaded.load');
      checkAmount(msg.weightBytes, 'loaded.weightBytes');
      checkAmount(msg.ms, 'loaded.ms');
      meta.u32(msg.load);
      meta.f64(msg.weightBytes);
      meta.f64(msg.ms);
      meta.str(msg.error);
      break;
    case 'credit':
      checkU32(msg.request, 'credit.request');
      checkU32(msg.processed, 'credit.processed');
      meta.u32(msg.request);
      meta.u32(msg.processed);
      break;
    case 'query':
      checkU32(msg.request, 'query.request');
      meta.u32(msg.request);
      break;
    case 'stats':
      for (const k of ['request', 'packets', 'rowsComputed', 'rowsDropped', 'nextRttSamples'] as const) checkU32(msg[k], `stats.${k}`);
      for (const k of ['busyMs', 'spanMs'] as const) checkAmount(msg[k], `stats.${k}`);
      for (const k of ['nextRttP50Ms', 'nextRttP95Ms'] as const) checkOptionalAmount(msg[k], `stats.${k}`);
      for (const k of ['request', 'packets', 'rowsComputed', 'rowsDropped', 'nextRttSamples'] as const) meta.u32(msg[k]);
      meta.f64(msg.busyMs);
      meta.f64(msg.spanMs);
      meta.f64(msg.nextRttP50Ms ?? NaN);
      meta.f64(msg.nextRttP95Ms ?? NaN);
      break;
    default: {
      const never: never = msg;
      throw new ProtocolError('bad-type', `unknown message ${JSON.stringify(never)}`);
    }
  }
  for (const [v, what] of [
    [request, 'request'],
    [step, 'step'],
    [epoch, 'epoch'],
  ] as const)
    checkU32(v, what);
  meta.pad4();

  const dtype = opts.dtype ?? 'f32';
  const elementBytes = dtype === 'f16' ? 2 : 4;
  const payloadBytes = payload ? payload.length * elementBytes : 0;
  const total = HEADER_BYTES + meta.length + payloadBytes;
  if (total > LIMITS.maxMessageBytes) throw new ProtocolError('oversized', `message of ${total} bytes`);

  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, PROTOCOL_MAGIC, true);
  view.setUint8(4, PROTOCOL_VERSION);
  view.setUint8(5, TYPE_CODES[msg.type]);
  view.setUint8(6, payload ? (dtype === 'f16' ? DTYPE_F16 : DTYPE_F32) : DTYPE_NONE);
  view.setUint8(7, flags);
  view.setUint32(8, request, true);
  view.setUint32(12, step, true);
  view.setUint32(16, epoch, true);
  view.setUint32(20, rows, true);
  view.setUint32(24, meta.length, true);
  view.setUint32(28, payloadBytes, true);
  out.set(meta.result(), HEADER_BYTES);
  if (payload) {
    const at = HEADER_BYTES + meta.length;
    if (dtype === 'f32') {
      new Float32Array(out.buffer, at, payload.length).set(payload);
    } else {
      for (let i = 0; i < payload.length; i++) view.setUint16(at + 2 * i, f32ToF16Bits(payload[i]), true);
    }
  }
  return out;
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

/** Reads and checks the fixed header (magic, version, type, dtype, lengths against the message length). */
export function decodeHeader(bytes: Uint8Array, opts: DecodeOptions = {}): MessageHeader {
  const maxBytes = opts.maxBytes ?? LIMITS.maxMessageBytes;
  if (bytes.length < HEADER_BYTES) throw new ProtocolError('truncated', `message of ${bytes.length} bytes is shorter than the ${HEADER_BYTES}-byte header`);
  if (bytes.length > maxBytes) throw new ProtocolError('oversized', `message of ${bytes.length} bytes > ${maxBytes}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  if (magic !== PROTOCOL_MAGIC) throw new ProtocolError('bad-magic', `magic 0x${magic.toString(16)} is not 'SPM1'`);
  const version = view.getUint8(4);
  if (version !== PROTOCOL_VERSION) {
    throw new ProtocolError('bad-version', `protocol version ${version}, this build speaks version ${PROTOCOL_VERSION}`);
  }
  const typeCode = view.getUint8(5);
  const type = TYPE_NAMES.get(typeCode);
  if (!type) throw new ProtocolError('bad-type', `unknown message type ${typeCode}`);
  const dtypeCode = view.getUint8(6);
  if (dtypeCode > DTYPE_F16) throw new ProtocolError('bad-value', `unknown payload dtype ${dtypeCode}`);
  const dtype = dtypeCode === DTYPE_F32 ? 'f32' : dtypeCode === DTYPE_F16 ? 'f16' : null;
  const flags = view.getUint8(7);
  if (flags & ~FLAG_VERDICT || (flags && type !== 'level')) throw new ProtocolError('bad-value', `unknown flags 0x${flags.toString(16)}`);
  const header: MessageHeader = {
    version,
    type,
    dtype,
    flags,
    request: view.getUint32(8, true),
    step: view.getUint32(12, true),
    epoch: view.getUint32(16, true),
    rows: view.getUint32(20, true),
    metaBytes: view.getUint32(24, true),
    payloadBytes: view.getUint32(28, true),
  };
  if (header.rows > LIMITS.maxRows) throw new ProtocolError('oversized', `${header.rows} rows > ${LIMITS.maxRows}`);
  if (header.metaBytes % 4) throw new ProtocolError('inconsistent', `metadata length ${header.metaBytes} is not a multiple of 4`);
  const expected = HEADER_BYTES + header.metaBytes + header.payloadBytes;
  if (expected > bytes.length) {
    throw new ProtocolError('truncated', `header announces ${expected} bytes, message has ${bytes.length}`);
  }
  if (expected < bytes.length) {
    throw new ProtocolError('inconsistent', `header announces ${expected} bytes, message has ${bytes.length}`);
  }
  if (dtype === null && header.payloadBytes !== 0) throw new ProtocolError('inconsistent', 'payload without a dtype');
  if (dtype && header.payloadBytes % (dtype === 'f16' ? 2 : 4)) {
    throw new ProtocolError('inconsistent', `payload of ${header.payloadBytes} bytes is not a whole number of ${dtype}`);
  }
  if (dtype && type !== 'level' && type !== 'result') throw new ProtocolError('inconsistent', `${type} message with a payload`);
  if (type !== 'level' && type !== 'result' && header.rows !== 0) throw new ProtocolError('inconsistent', `${type} message with rows`);
  return header;
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
  const n = h.payloadBytes / 2;
  const view = new DataView(bytes.buffer, at, h.payloadBytes);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = f16BitsToF32(view.getUint16(2 * i, true));
  return out;
}

function decodeBody(bytes: Uint8Array, h: MessageHeader): MeshMessage {
  const r = new Reader(bytes, HEADER_BYTES, HEADER_BYTES + h.metaBytes);
  let msg: MeshMessage;
  switch (h.type) {
    case 'level': {
      let verdict: Verdict | null = null;
      if (h.flags & FLAG_VERDICT) {
        const epoch = r.u32('verdict.epoch');
        const nc = r.u32('verdict.commit count');
        const nr = r.u32('verdict.release count');
        if (nc > LIMITS.maxListLength || nr > LIMITS.maxListLength) throw new ProtocolError('oversized', `verdict lists ${nc}/${nr}`);
        const commit = r.u32Array(nc, 'verdict.commit');
        const release = r.u32Array(nr, 'verdict.release');
        verdict = { epoch, commit, release };
      }
      const rows: RowMeta[] = [];
      for (let i = 0; i < h.rows; i++) {
        const node = r.u32('row.node');
        const token = r.u32('row.token');
        const position = r.u32('row.position');
        const slot = r.u32('row.slot');
        const uniform = r.f64('row.uniform');
        checkUniform(uniform);
        const ancestors = r.u32s('row.ancestors', LIMITS.maxAncestors);
        rows.push({ node, token, position, slot, ancestors, uniform });
      }
      const logitsRows = r.u32s('logitsRows');
      checkIndices(logitsRows, h.rows, 'logitsRows');
      r.finish();
      const hidden = readPayload(bytes, h);
      if (hidden && (h.rows === 0 ? hidden.length !== 0 : hidden.length % h.rows !== 0)) {
        throw new ProtocolError('inconsistent', `hidden length ${hidden.length} is not a multiple of ${h.rows} rows`);
      }
      msg = { type: 'level', packet: { request: h.request, step: h.step, epoch: h.epoch, verdict, rows, hidden, logitsRows } };
      break;
    }
    case 'result': {
      const nodes = r.u32Array(h.rows, 'nodes');
      const tokens = r.u32Array(h.rows, 'tokens');
      const logitsRows = r.u32s('logitsRows');
      r.finish();
      const logits = readPayload(bytes, h);
      const n = logitsRows.length;
      if (logits && (n === 0 ? logits.length !== 0 : logits.length % n !== 0)) {
        throw new ProtocolError('inconsistent', `logits length ${logits.length} is not a multiple of ${n} rows`);
      }
      msg = { type: 'result', packet: { request: h.request, step: h.step, epoch: h.epoch, nodes, tokens, logits, logitsRows } };
      break;
    }
    case 'config': {
      const config: RequestConfig = { request: h.request, temperature: r.f64('temperature'), topK: r.u32('topK'), topP: r.f64('topP') };
      checkConfig(config);
      msg = { type: 'config', config };
      break;
    }
    case 'hello': {
      const role = r.u8('role');
      if (role > 1) throw new ProtocolError('bad-value', `role ${role}`);
      msg = { type: 'hello', role: role === 0 ? 'leader' : 'stage', peer: r.str('peer'), name: r.str('name') };
      break;
    }
    case 'assign':
      msg = { type: 'assign', ring: r.u32('ring'), index: r.u32('index'), count: r.u32('count'), prev: r.str('prev'), next: r.str('next') };
      if (msg.index >= msg.count) throw new ProtocolError('inconsistent', `assign index ${msg.index} >= count ${msg.count}`);
      break;
    case 'ready':
      msg = { type: 'ready', ring: r.u32('ring') };
      break;
    case 'ping':
    case 'pong': {
      const seq = r.u32('seq');
      const time = r.f64('time');
      checkTime(time, 'time');
      msg = { type: h.type, seq, time };
      break;
    }
    case 'error':
      msg = { type: 'error', code: r.str('code'), message: r.str('message') };
      break;
    case 'bye':
      msg = { type: 'bye', reason: r.str('reason') };
      break;
    case 'info':
      msg = { type: 'info', device: r.str('device'), gbps: r.f64('gbps'), memoryBytes: r.f64('memoryBytes') };
      checkAmount(msg.gbps, 'info.gbps');
      checkAmount(msg.memoryBytes, 'info.memoryBytes');
      break;
    case 'load': {
      const [load, start, end, numSlots, hopDelayMs] = [r.u32('load'), r.u32('start'), r.u32('end'), r.u32('numSlots'), r.u32('hopDelayMs')];
      const flags = r.u8('load flags');
      if (flags > 3) throw new ProtocolError('bad-value', `load flags ${flags}`);
      const wireCode = r.u8('wire dtype');
      const wire = wireCode === 1 ? 'f32' : wireCode === 2 ? 'f16' : null;
      if (!wire) throw new ProtocolError('bad-value', `wire dtype ${wireCode}`);
      msg = { type: 'load', load, modelUrl: r.str('modelUrl'), start, end, embed: (flags & 1) !== 0, head: (flags & 2) !== 0, numSlots, wire, hopDelayMs };
      checkLoad(msg);
      break;
    }
    case 'progress':
      msg = { type: 'progress', load: r.u32('load'), done: r.f64('done'), total: r.f64('total') };
      checkAmount(msg.done, 'progress.done');
      checkAmount(msg.total, 'progress.total');
      break;
    case 'loaded':
      msg = { type: 'loaded', load: r.u32('load'), weightBytes: r.f64('weightBytes'), ms: r.f64('ms'), error: r.str('error') };
      checkAmount(msg.weightBytes, 'loaded.weightBytes');
      checkAmount(msg.ms, 'loaded.ms');
      break;
    case 'credit':
      msg = { type: 'credit', request: r.u32('request'), processed: r.u32('processed') };
      break;
    case 'query':
      msg = { type: 'query', request: r.u32('request') };
      break;
    case 'stats': {
      const [request, packets, rowsComputed, rowsDropped, nextRttSamples] = [r.u32('request'), r.u32('packets'), r.u32('rowsComputed'), r.u32('rowsDropped'), r.u32('nextRttSamples')];
      const [busyMs, spanMs, p50, p95] = [r.f64('busyMs'), r.f64('spanMs'), r.f64('nextRttP50Ms'), r.f64('nextRttP95Ms')];
      msg = { type: 'stats', request, packets, rowsComputed, rowsDropped, busyMs, spanMs, nextRttP50Ms: Number.isNaN(p50) ? null : p50, nextRttP95Ms: Number.isNaN(p95) ? null : p95, nextRttSamples };
      for (const k of ['busyMs', 'spanMs'] as const) checkAmount(msg[k], `stats.${k}`);
      for (const k of ['nextRttP50Ms', 'nextRttP95Ms'] as const) checkOptionalAmount(msg[k], `stats.${k}`);
      break;
    }
  }
  if (h.type !== 'level' && h.type !== 'result') {
    r.finish();
    if (h.request !== 0 && h.type !== 'config') throw new ProtocolError('inconsistent', `${h.type} with a request id`);
    if (h.step !== 0 || h.epoch !== 0) throw new ProtocolError('inconsistent', `${h.type} with a step/epoch`);
  }
  return msg;
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
