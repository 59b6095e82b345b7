// The signalling service: WebSocket rooms that relay SDP/ICE between the tabs of one mesh.
// One implementation, hosted by the Vite dev server (vite-plugin.ts) and by `npm start` (main.ts).
//
// A tab sends `join` first; the room is created by its first joiner, who may protect it with a
// secret; later joiners must present the same secret or are refused (error, then close 4003).
// After joining, `signal` messages are relayed to one other member of the room; members hear
// `peer-joined` / `peer-left`. Every message is size-checked, parsed and shape-checked; a bad one
// gets an error reply (fatal ones close the socket) and never reaches another tab.
//
// No client can take it down: nothing a socket does throws out of a handler, and the limits of
// SIGNALLING_LIMITS (sockets, join attempts and wrong secrets per address, join timeout, unsent
// bytes per socket, messages per second) and the Origin check refuse the rest, each refusal with an
// error message to the client and one line in the (per-address capped) log. Rooms the operator
// reserves cannot be crowded out or claimed.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import {
  CLOSE_CODES,
  MAX_META_KEYS,
  MAX_META_VALUE_LENGTH,
  MAX_SECRET_LENGTH,
  ROOM_PATTERN,
  SIGNAL_PATH,
  SIGNAL_VERSION,
  API_ID_PATTERN,
  API_ROLE,
  API_MAX_TEXT_CHARS,
  API_MAX_TOKENS,
  type ApiClientMessage,
  type ClientMessage,
  type IceServerConfig,
  type PeerInfo,
  type PeerMeta,
  type ServerMessage,
  type SignalErrorCode,
} from './signal-protocol.ts';
import { addressKey, LimitedLog, PerAddress, TokenBucket, truncateUtf8 } from './limits.ts';
import { originAllowed, refuseUpgrade } from './http-security.ts';

/** The limits of the service (per socket, per address, per server); defaults in SIGNALLING_LIMITS. */
export interface SignallingLimits {
  /** Largest message answered with anything but an error (bytes). */
  maxMessageBytes: number;
  maxPeersPerRoom: number;
  /** Rooms that tabs may create; the operator's reserved rooms do not count. */
  maxRooms: number;
  /** Messages per second a socket may send on average (burst 5x). */
  rateLimit: number;
  /** Interval of WebSocket-level pings; a socket that misses one is dropped. */
  heartbeatMs: number;
  /** Open signalling sockets, all addresses together. */
  maxConnections: number;
  /** Open signalling sockets from one address (an IPv6 address counts by its /64). */
  maxConnectionsPerAddress: number;
  /** A socket that has not joined a room this long after it opened is closed. */
  joinTimeoutMs: number;
  /** Join attempts per address: a burst of `joinBurst`, then `joinsPerMinute` a minute. */
  joinBurst: number;
  joinsPerMinute: number;
  /** Wrong secrets per address: a burst of `secretGuessBurst`, then `secretGuessesPerMinute` a minute. */
  secretGuessBurst: number;
  secretGuessesPerMinute: number;
  /** A socket whose unsent data grows past this (a reader that stopped reading) is dropped (bytes). */
  maxBufferedBytes: number;
}

export const SIGNALLING_LIMITS: Readonly<SignallingLimits> = {
  maxMessageBytes: 64 * 1024,
  maxPeersPerRoom: 64,
  maxRooms: 1000,
  rateLimit: 100,
  heartbeatMs: 15_000,
  maxConnections: 1000,
  maxConnectionsPerAddress: 32,
  joinTimeoutMs: 10_000,
  joinBurst: 20,
  joinsPerMinute: 60,
  secretGuessBurst: 5,
  secretGuessesPerMinute: 6,
  maxBufferedBytes: 1024 * 1024,
};

export interface SignallingOptions extends Partial<SignallingLimits> {
  /** Handed to every tab as RTCPeerConnection iceServers (STUN/TURN). Default []. */
  iceServers?: IceServerConfig[];
  /**
   * Rooms whose secret the operator fixed in advance (e.g. `npm start -- --room R --secret S`).
   * They are reserved: only holders of the secret join them, and they can always be created.
   */
  roomSecrets?: Record<string, string>;
  /**
   * Rooms the operator reserves (e.g. `npm start -- --room R`): they can always be created (other
   * rooms cannot crowd them out), and a joiner cannot claim one with a secret of its own.
   */
  reservedRooms?: string[];
  /**
   * Page origins (e.g. 'https://mesh.example:8443') whose WebSocket upgrades are taken besides pages
   * of the same host:port as the request; '*' takes any. Requests without Origin (programs) are taken.
   */
  allowedOrigins?: string[];
  log?: (line: string) => void;
  /** The OpenAI-compatible API's relay (api-server.ts): what room members send it, and who left. */
  api?: ApiRelayHooks;
  /**
   * When set, only a joiner presenting this token may take the API leader's role (meta.role
   * API_ROLE): the server's own headless leader. Otherwise anyone who may join the room may.
   */
  apiToken?: string;
}

/** How the service hands the API leader's messages (validated) to the HTTP side. */
export interface ApiRelayHooks {
  message(room: string, from: string, msg: ApiClientMessage): void;
  left(room: string, id: string): void;
}

export interface RoomSummary {
  room: string;
  protected: boolean;
  peers: PeerInfo[];
}

export interface AttachOptions {
  /**
   * Upgrades to other paths: 'ignore' leaves them to other listeners (Vite's HMR socket), 'refuse'
   * answers 404 and closes them (a server with no other WebSocket service). Default 'ignore'.
   */
  otherPaths?: 'ignore' | 'refuse';
}

export interface SignallingServer {
  /** Handles an HTTP upgrade already known to be for the signalling path. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Listens for upgrades to `path` on an HTTP(S) server. */
  attach(server: EventEmitter, path?: string, opts?: AttachOptions): void;
  rooms(): RoomSummary[];
  /** Sends `msg` to member `id` of `room`; false when there is no such member. */
  sendTo(room: string, id: string, msg: ServerMessage): boolean;
  close(): Promise<void>;
}

/** One accepted socket: its address key (for limits and the log) and whether it is on its way out. */
interface Conn {
  ws: WebSocket;
  key: string;
  closing: boolean;
}

interface Member {
  id: string;
  meta: PeerMeta;
  conn: Conn;
}

/** What the service keeps per address key. */
interface AddressState {
  conns: number;
  joins: TokenBucket;
  guesses: TokenBucket;
}

interface Room {
  name: string;
  secretHash: Buffer | null;
  members: Map<string, Member>;
}

class Refusal extends Error {
  constructor(
    readonly code: SignalErrorCode,
    message: string,
    readonly fatal = false,
  ) {
    super(message);
  }
}

const hashSecret = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseMeta(v: unknown): PeerMeta {
  if (v === undefined) return {};
  if (!isPlainObject(v)) throw new Refusal('bad-message', 'join.meta must be an object');
  const keys = Object.keys(v);
  if (keys.length > MAX_META_KEYS) throw new Refusal('bad-message', `join.meta has more than ${MAX_META_KEYS} keys`);
  const out: PeerMeta = {};
  for (const k of keys) {
    const x = v[k];
    if (k.length > 64) throw new Refusal('bad-message', 'join.meta key too long');
    if (typeof x === 'string') {
      if (x.length > MAX_META_VALUE_LENGTH) throw new Refusal('bad-message', `join.meta.${k} longer than ${MAX_META_VALUE_LENGTH}`);
    } else if (!(typeof x === 'boolean' || (typeof x === 'number' && Number.isFinite(x)))) {
      throw new Refusal('bad-message', `join.meta.${k} must be a string, finite number or boolean`);
    }
    out[k] = x;
  }
  return out;
}

/** Checks the JSON shape of a client message; throws Refusal with a readable reason. */
export function parseClientMessage(text: string): ClientMessage {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Refusal('bad-json', 'message is not valid JSON');
  }
  if (!isPlainObject(v) || typeof v.type !== 'string') throw new Refusal('bad-message', 'message must be an object with a string "type"');
  switch (v.type) {
    case 'join': {
      if (v.version !== SIGNAL_VERSION) {
        throw new Refusal('bad-version', `signalling version ${String(v.version).slice(0, 32)} is not supported (server speaks ${SIGNAL_VERSION}); reload the page`, true);
      }
      if (typeof v.room !== 'string' || !ROOM_PATTERN.test(v.room)) {
        throw new Refusal('bad-message', 'join.room must be 1-64 characters of A-Z a-z 0-9 . _ -');
      }
      if (v.secret !== undefined && (typeof v.secret !== 'string' || v.secret.length > MAX_SECRET_LENGTH)) {
        throw new Refusal('bad-message', `join.secret must be a string of at most ${MAX_SECRET_LENGTH} characters`);
      }
      if (v.apiToken !== undefined && (typeof v.apiToken !== 'string' || v.apiToken.length > MAX_SECRET_LENGTH)) {
        throw new Refusal('bad-message', `join.apiToken must be a string of at most ${MAX_SECRET_LENGTH} characters`);
      }
      const msg: ClientMessage = { type: 'join', version: v.version, room: v.room, meta: parseMeta(v.meta) };
      if (typeof v.secret === 'string' && v.secret !== '') msg.secret = v.secret;
      if (typeof v.apiToken === 'string' && v.apiToken !== '') msg.apiToken = v.apiToken;
      return msg;
    }
    case 'signal':
      if (typeof v.to !== 'string' || v.to.length === 0 || v.to.length > 64) throw new Refusal('bad-message', 'signal.to must be a peer id');
      if (!isPlainObject(v.data)) throw new Refusal('bad-message', 'signal.data must be an object');
      return { type: 'signal', to: v.to, data: v.data };
    case 'ping':
      return { type: 'ping' };
    case 'api-start':
    case 'api-chunk':
    case 'api-done':
    case 'api-error':
      return parseApiMessage(v, v.type);
    default:
      throw new Refusal('bad-message', `unknown message type "${v.type.slice(0, 32)}"`);
  }
}

const count = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= API_MAX_TOKENS * 4;

/** The API leader's answers (see signal-protocol.ts), shape-checked like every other message. */
function parseApiMessage(v: Record<string, unknown>, type: ApiClientMessage['type']): ApiClientMessage {
  if (typeof v.id !== 'string' || !API_ID_PATTERN.test(v.id)) throw new Refusal('bad-message', `${type}.id must be a request id`);
  const id = v.id;
  if (type === 'api-start') {
    if (!count(v.promptTokens)) throw new Refusal('bad-message', 'api-start needs promptTokens (a count)');
    return { type, id, promptTokens: v.promptTokens };
  }
  if (type === 'api-chunk') {
    if (typeof v.text !== 'string' || v.text.length > API_MAX_TEXT_CHARS || !count(v.tokens)) throw new Refusal('bad-message', 'api-chunk needs text (string) and tokens (count)');
    return { type, id, text: v.text, tokens: v.tokens };
  }
  if (type === 'api-done') {
    if ((v.finish !== 'stop' && v.finish !== 'length') || !count(v.promptTokens) || !count(v.completionTokens)) {
      throw new Refusal('bad-message', 'api-done needs finish (stop|length), promptTokens and completionTokens (counts)');
    }
    return { type, id, finish: v.finish, promptTokens: v.promptTokens, completionTokens: v.completionTokens };
  }
  if ((v.status !== 400 && v.status !== 500 && v.status !== 503) || typeof v.message !== 'string') throw new Refusal('bad-message', 'api-error needs status (400|500|503) and message');
  return { type, id, status: v.status, message: v.message.slice(0, 1000) };
}

/** How long a socket we closed may take to answer the close frame before it is cut. */
const CLOSE_GRACE_MS = 2000;
/** How often idle per-address state is dropped and held-back log lines are counted. */
const SWEEP_MS = 30_000;

const seconds = (ms: number): string => String(Math.max(1, Math.ceil(ms / 1000)));

export function createSignallingServer(opts: SignallingOptions = {}): SignallingServer {
  const L: SignallingLimits = { ...SIGNALLING_LIMITS };
  for (const k of Object.keys(SIGNALLING_LIMITS) as (keyof SignallingLimits)[]) {
    const v = opts[k];
    if (v !== undefined) L[k] = v;
  }
  const iceServers = opts.iceServers ?? [];
  const reserved = new Set([...(opts.reservedRooms ?? []), ...Object.keys(opts.roomSecrets ?? {})]);
  const allowedOrigins = opts.allowedOrigins ?? [];
  const apiTokenHash = opts.apiToken ? hashSecret(opts.apiToken) : null;
  const logs = new LimitedLog(opts.log ?? (() => {}));
  const rooms = new Map<string, Room>();
  const addresses = new PerAddress<AddressState>(
    () => ({ conns: 0, joins: new TokenBucket(L.joinBurst, L.joinsPerMinute), guesses: new TokenBucket(L.secretGuessBurst, L.secretGuessesPerMinute) }),
    (a) => a.conns === 0 && a.joins.full() && a.guesses.full(),
  );
  let open = 0;
  // Hard cap: ws closes (1009) above this without reading; between the two limits we answer.
  const wss = new WebSocketServer({ noServer: true, maxPayload: Math.max(L.maxMessageBytes * 4, 1 << 20) });
  const alive = new WeakSet<WebSocket>();
  const conns = new WeakMap<WebSocket, Conn>();

  /** Closes with a reason cut to the protocol's 123 bytes; a peer that does not answer is cut after a grace. */
  const closeConn = (c: Conn, code: number, reason: string): void => {
    c.closing = true;
    try {
      c.ws.close(code, truncateUtf8(reason));
    } catch {
      c.ws.terminate();
    }
    setTimeout(() => c.ws.terminate(), CLOSE_GRACE_MS).unref?.();
  };
  const send = (c: Conn, msg: ServerMessage): void => {
    if (c.ws.readyState !== WebSocket.OPEN) return;
    if (c.ws.bufferedAmount > L.maxBufferedBytes) {
      logs.line(c.key, `[signal] dropped a socket of ${c.key}: ${c.ws.bufferedAmount} bytes unread (limit ${L.maxBufferedBytes}), a reader that stopped reading`);
      c.closing = true;
      c.ws.terminate();
      return;
    }
    c.ws.send(JSON.stringify(msg));
  };
  /** Every refusal: an error message to the client, one log line; fatal ones close the socket. */
  const fail = (c: Conn, code: SignalErrorCode, message: string, fatal: boolean): void => {
    logs.line(c.key, `[signal] refused ${c.key}: ${code}: ${message}${fatal ? ' (socket closed)' : ''}`);
    send(c, { type: 'error', code, message, fatal });
    if (fatal) closeConn(c, CLOSE_CODES[code] ?? CLOSE_CODES.default, message);
  };
  /** What a handler threw, answered; nothing thrown here leaves the handler. */
  const answer = (c: Conn, e: unknown): void => {
    try {
      if (e instanceof Refusal) fail(c, e.code, e.message, e.fatal);
      else {
        logs.line(c.key, `[signal] internal error on a message of ${c.key}: ${String(e)}`);
        fail(c, 'bad-message', 'internal error handling the message', false);
      }
    } catch (e2) {
      logs.line(c.key, `[signal] could not answer ${c.key}: ${String(e2)}`);
      c.ws.terminate();
    }
  };

  const join = (c: Conn, msg: Extract<ClientMessage, { type: 'join' }>): Room => {
    const a = addresses.get(c.key);
    if (!a.joins.take()) {
      throw new Refusal('throttled', `too many join attempts from ${c.key} (${L.joinBurst}, then ${L.joinsPerMinute} a minute); try again in ${seconds(a.joins.waitMs())} s`, true);
    }
    const isReserved = reserved.has(msg.room);
    let r = rooms.get(msg.room);
    if (!r) {
      const unreserved = rooms.size - [...reserved].filter((n) => rooms.has(n)).length;
      if (!isReserved && unreserved >= L.maxRooms) throw new Refusal('server-full', `the signalling server has too many rooms (${L.maxRooms})`, true);
      // A reserved room takes only the operator's secret (or none): a joiner cannot claim it.
      const secret = isReserved ? opts.roomSecrets?.[msg.room] : msg.secret;
      r = { name: msg.room, secretHash: secret ? hashSecret(secret) : null, members: new Map() };
    }
    if (r.secretHash) {
      if (!msg.secret) throw new Refusal('secret-required', `room "${msg.room}" is protected by a secret; open the join link with its secret`, true);
      if (!a.guesses.available()) {
        throw new Refusal('throttled', `too many wrong secrets from ${c.key}; try again in ${seconds(a.guesses.waitMs())} s`, true);
      }
      if (!timingSafeEqual(hashSecret(msg.secret), r.secretHash)) {
        a.guesses.take();
        throw new Refusal('wrong-secret', `wrong secret for room "${msg.room}"`, true);
      }
    }
    if (apiTokenHash && msg.meta?.role === API_ROLE && !(msg.apiToken && timingSafeEqual(hashSecret(msg.apiToken), apiTokenHash))) {
      throw new Refusal('wrong-secret', 'only this server\'s own leader may serve its API (role "api")', true);
    }
    if (r.members.size >= L.maxPeersPerRoom) throw new Refusal('room-full', `room "${msg.room}" is full (${L.maxPeersPerRoom} tabs)`, true);
    rooms.set(r.name, r);
    return r;
  };

  const accept = (ws: WebSocket, req: IncomingMessage): void => {
    const c: Conn = { ws, key: addressKey(req.socket.remoteAddress), closing: false };
    conns.set(ws, c);
    ws.on('error', (e) => logs.line(c.key, `[signal] socket error from ${c.key}: ${e.message}`));
    const addr = addresses.get(c.key);
    if (open >= L.maxConnections) {
      return fail(c, 'server-full', `the signalling server has ${L.maxConnections} connections open; try again later`, true);
    }
    if (addr.conns >= L.maxConnectionsPerAddress) {
      return fail(c, 'too-many-connections', `too many signalling connections from ${c.key} (limit ${L.maxConnectionsPerAddress}); close other tabs`, true);
    }
    open++;
    addr.conns++;
    let me: Member | null = null;
    let room: Room | null = null;
    const rate = new TokenBucket(L.rateLimit * 5, L.rateLimit * 60);
    alive.add(ws);
    ws.on('pong', () => alive.add(ws));
    const joinTimer = setTimeout(() => {
      if (!me && !c.closing) answer(c, new Refusal('join-timeout', `no join within ${seconds(L.joinTimeoutMs)} s of opening the socket`, true));
    }, L.joinTimeoutMs);
    joinTimer.unref?.();

    const handle = (msg: ClientMessage): void => {
      if (msg.type === 'ping') return send(c, { type: 'pong' });
      if (msg.type === 'join') {
        if (me) throw new Refusal('already-joined', 'this socket already joined a room');
        const r = join(c, msg);
        clearTimeout(joinTimer);
        const id = randomBytes(6).toString('base64url');
        const m: Member = { id, meta: msg.meta ?? {}, conn: c };
        me = m;
        room = r;
        const peers = [...r.members.values()].map((x) => ({ id: x.id, meta: x.meta }));
        for (const x of r.members.values()) send(x.conn, { type: 'peer-joined', peer: { id, meta: m.meta } });
        r.members.set(id, m);
        send(c, { type: 'welcome', id, room: r.name, peers, iceServers, protected: r.secretHash !== null });
        logs.line(c.key, `[signal] ${id} joined ${r.name} (${r.members.size} in room) from ${c.key}`);
        return;
      }
      if (!me || !room) throw new Refusal('not-joined', 'join a room before sending signals');
      if (msg.type !== 'signal') return opts.api?.message(room.name, me.id, msg);
      const target = room.members.get(msg.to);
      if (!target) throw new Refusal('unknown-peer', `no peer "${msg.to}" in room "${room.name}"`);
      send(target.conn, { type: 'signal', from: me.id, data: msg.data });
    };

    ws.on('message', (raw: RawData, isBinary: boolean) => {
      if (c.closing) return;
      try {
        if (!rate.take()) throw new Refusal('rate-limited', `more than ${L.rateLimit} messages per second`, true);
        if (isBinary) throw new Refusal('bad-message', 'binary messages are not accepted; send JSON text');
        const buf = Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw as ArrayBuffer);
        if (buf.length > L.maxMessageBytes) throw new Refusal('too-large', `message of ${buf.length} bytes exceeds ${L.maxMessageBytes}`);
        handle(parseClientMessage(buf.toString('utf8')));
      } catch (e) {
        answer(c, e);
      }
    });

    ws.on('close', () => {
      try {
        clearTimeout(joinTimer);
        open--;
        addr.conns--;
        if (!me || !room) return;
        room.members.delete(me.id);
        for (const m of room.members.values()) send(m.conn, { type: 'peer-left', id: me.id });
        logs.line(c.key, `[signal] ${me.id} left ${room.name} (${room.members.size} in room)`);
        opts.api?.left(room.name, me.id);
        if (room.members.size === 0) rooms.delete(room.name);
        me = null;
      } catch (e) {
        logs.line(c.key, `[signal] internal error closing a socket of ${c.key}: ${String(e)}`);
      }
    });
  };
  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    try {
      accept(ws, req);
    } catch (e) {
      opts.log?.(`[signal] internal error accepting a socket: ${String(e)}`);
      ws.terminate();
    }
  });

  const heartbeat = setInterval(() => {
    for (const ws of wss.clients) {
      if (!alive.has(ws)) {
        const key = conns.get(ws)?.key ?? '?';
        logs.line(key, `[signal] dropped a socket of ${key}: no answer to a ping within ${seconds(L.heartbeatMs)} s`);
        ws.terminate();
        continue;
      }
      alive.delete(ws);
      try {
        ws.ping();
      } catch {
        ws.terminate();
      }
    }
  }, L.heartbeatMs);
  heartbeat.unref?.();
  const sweep = setInterval(() => {
    addresses.sweep();
    logs.flush();
  }, SWEEP_MS);
  sweep.unref?.();

  const handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const key = addressKey(req.socket.remoteAddress);
    socket.on('error', (e) => logs.line(key, `[signal] upgrade socket error from ${key}: ${e.message}`));
    if (!originAllowed(req, allowedOrigins)) {
      const origin = JSON.stringify(String(req.headers.origin).slice(0, 100));
      const host = JSON.stringify(String(req.headers.host).slice(0, 100));
      logs.line(key, `[signal] refused ${key}: origin ${origin} is not this server's (${host}) nor allowed (403)`);
      refuseUpgrade(socket, 403, `signalling refused: pages from origin ${origin} may not connect; only pages of ${host} (or allowed origins) may`);
      return;
    }
    try {
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    } catch (e) {
      logs.line(key, `[signal] bad upgrade from ${key}: ${String(e)}`);
      socket.destroy();
    }
  };

  return {
    handleUpgrade,
    attach(server, path = SIGNAL_PATH, attachOpts = {}) {
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        if (isPath(req.url, path)) return handleUpgrade(req, socket, head);
        if (attachOpts.otherPaths !== 'refuse') return;
        const key = addressKey(req.socket.remoteAddress);
        const asked = JSON.stringify(String(req.url).slice(0, 100));
        logs.line(key, `[signal] refused ${key}: WebSocket upgrade to ${asked} (404)`);
        refuseUpgrade(socket, 404, `no WebSocket service at ${asked}; the signalling service is at ${path}`);
      });
    },
    rooms() {
      return [...rooms.values()].map((r) => ({
        room: r.name,
        protected: r.secretHash !== null,
        peers: [...r.members.values()].map((m) => ({ id: m.id, meta: m.meta })),
      }));
    },
    sendTo(room, id, msg) {
      const m = rooms.get(room)?.members.get(id);
      if (!m) return false;
      send(m.conn, msg);
      return true;
    },
    close() {
      clearInterval(heartbeat);
      clearInterval(sweep);
      for (const ws of wss.clients) ws.terminate();
      rooms.clear();
      return new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** Whether a request URL is for `path` (query string ignored). */
export function isPath(url: string | undefined, path: string = SIGNAL_PATH): boolean {
  if (!url) return false;
  const q = url.indexOf('?');
  return (q < 0 ? url : url.slice(0, q)) === path;
}
