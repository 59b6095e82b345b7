// The signalling service: WebSocket rooms that relay SDP/ICE between the tabs of one mesh.
// One implementation, hosted by the Vite dev server (vite-plugin.ts) and by `npm start` (main.ts).
//
// A tab sends `join` first; the room is created by its first joiner, who may protect it with a
// secret; later joiners must present the same secret or are refused (error, then close 4003).
// After joining, `signal` messages are relayed to one other member of the room; members hear
// `peer-joined` / `peer-left`. Every message is size-checked, parsed and shape-checked; a bad one
// gets an error reply (fatal ones close the socket) and never reaches another tab.

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
  type ClientMessage,
  type IceServerConfig,
  type PeerInfo,
  type PeerMeta,
  type ServerMessage,
  type SignalErrorCode,
} from './signal-protocol.ts';

export interface SignallingOptions {
  /** Handed to every tab as RTCPeerConnection iceServers (STUN/TURN). Default []. */
  iceServers?: IceServerConfig[];
  /** Largest message answered with anything but an error. Default 64 KiB. */
  maxMessageBytes?: number;
  maxPeersPerRoom?: number;
  maxRooms?: number;
  /** Messages per second a socket may send on average (burst 5x). Default 100. */
  rateLimit?: number;
  /** Interval of WebSocket-level pings; a socket that misses one is dropped. Default 15 s. */
  heartbeatMs?: number;
  /** Rooms whose secret the operator fixed in advance (e.g. `npm start -- --room R --secret S`). */
  roomSecrets?: Record<string, string>;
  log?: (line: string) => void;
}

export interface RoomSummary {
  room: string;
  protected: boolean;
  peers: PeerInfo[];
}

export interface SignallingServer {
  /** Handles an HTTP upgrade already known to be for the signalling path. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Listens for upgrades to `path` on an HTTP(S) server, leaving other upgrades (Vite HMR) alone. */
  attach(server: EventEmitter, path?: string): void;
  rooms(): RoomSummary[];
  close(): Promise<void>;
}

interface Member {
  id: string;
  meta: PeerMeta;
  socket: WebSocket;
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
        throw new Refusal('bad-version', `signalling version ${String(v.version)} is not supported (server speaks ${SIGNAL_VERSION}); reload the page`, true);
      }
      if (typeof v.room !== 'string' || !ROOM_PATTERN.test(v.room)) {
        throw new Refusal('bad-message', 'join.room must be 1-64 characters of A-Z a-z 0-9 . _ -');
      }
      if (v.secret !== undefined && (typeof v.secret !== 'string' || v.secret.length > MAX_SECRET_LENGTH)) {
        throw new Refusal('bad-message', `join.secret must be a string of at most ${MAX_SECRET_LENGTH} characters`);
      }
      const msg: ClientMessage = { type: 'join', version: v.version, room: v.room, meta: parseMeta(v.meta) };
      if (typeof v.secret === 'string' && v.secret !== '') msg.secret = v.secret;
      return msg;
    }
    case 'signal':
      if (typeof v.to !== 'string' || v.to.length === 0 || v.to.length > 64) throw new Refusal('bad-message', 'signal.to must be a peer id');
      if (!isPlainObject(v.data)) throw new Refusal('bad-message', 'signal.data must be an object');
      return { type: 'signal', to: v.to, data: v.data };
    case 'ping':
      return { type: 'ping' };
    default:
      throw new Refusal('bad-message', `unknown message type "${v.type.slice(0, 32)}"`);
  }
}

export function createSignallingServer(opts: SignallingOptions = {}): SignallingServer {
  const iceServers = opts.iceServers ?? [];
  const maxMessageBytes = opts.maxMessageBytes ?? 64 * 1024;
  const maxPeers = opts.maxPeersPerRoom ?? 64;
  const maxRooms = opts.maxRooms ?? 1000;
  const rate = opts.rateLimit ?? 100;
  const log = opts.log ?? (() => {});
  const rooms = new Map<string, Room>();
  // Hard cap: ws closes (1009) above this without reading; between the two limits we answer.
  const wss = new WebSocketServer({ noServer: true, maxPayload: Math.max(maxMessageBytes * 4, 1 << 20) });
  const alive = new WeakSet<WebSocket>();

  const send = (ws: WebSocket, msg: ServerMessage): void => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  };
  const fail = (ws: WebSocket, code: SignalErrorCode, message: string, fatal: boolean): void => {
    send(ws, { type: 'error', code, message, fatal });
    if (fatal) ws.close(CLOSE_CODES[code] ?? CLOSE_CODES.default, message.slice(0, 120));
  };

  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    const remote = req.socket.remoteAddress ?? '?';
    let me: Member | null = null;
    let room: Room | null = null;
    let tokens = rate * 5;
    let lastRefill = Date.now();
    alive.add(ws);
    ws.on('pong', () => alive.add(ws));

    const handle = (msg: ClientMessage): void => {
      if (msg.type === 'ping') return send(ws, { type: 'pong' });
      if (msg.type === 'join') {
        if (me) throw new Refusal('already-joined', 'this socket already joined a room');
        let r = rooms.get(msg.room);
        if (!r) {
          if (rooms.size >= maxRooms) throw new Refusal('server-full', 'the signalling server has too many rooms', true);
          const preset = opts.roomSecrets?.[msg.room];
          const secret = preset ?? msg.secret;
          r = { name: msg.room, secretHash: secret ? hashSecret(secret) : null, members: new Map() };
          rooms.set(msg.room, r);
        }
        if (r.secretHash) {
          if (!msg.secret) {
            throw new Refusal('secret-required', `room "${msg.room}" is protected by a secret; open the join link with its secret`, true);
          }
          if (!timingSafeEqual(hashSecret(msg.secret), r.secretHash)) {
            throw new Refusal('wrong-secret', `wrong secret for room "${msg.room}"`, true);
          }
        }
        if (r.members.size >= maxPeers) throw new Refusal('room-full', `room "${msg.room}" is full (${maxPeers} tabs)`, true);
        const id = randomBytes(6).toString('base64url');
        me = { id, meta: msg.meta ?? {}, socket: ws };
        room = r;
        const peers = [...r.members.values()].map((m) => ({ id: m.id, meta: m.meta }));
        for (const m of r.members.values()) send(m.socket, { type: 'peer-joined', peer: { id, meta: me.meta } });
        r.members.set(id, me);
        send(ws, { type: 'welcome', id, room: r.name, peers, iceServers, protected: r.secretHash !== null });
        log(`[signal] ${id} joined ${r.name} (${r.members.size} in room) from ${remote}`);
        return;
      }
      // signal
      if (!me || !room) throw new Refusal('not-joined', 'join a room before sending signals');
      const target = room.members.get(msg.to);
      if (!target) throw new Refusal('unknown-peer', `no peer "${msg.to}" in room "${room.name}"`);
      send(target.socket, { type: 'signal', from: me.id, data: msg.data });
    };

    ws.on('message', (raw: RawData, isBinary: boolean) => {
      try {
        const now = Date.now();
        tokens = Math.min(rate * 5, tokens + ((now - lastRefill) / 1000) * rate);
        lastRefill = now;
        if (--tokens < 0) throw new Refusal('rate-limited', `more than ${rate} messages per second`, true);
        if (isBinary) throw new Refusal('bad-message', 'binary messages are not accepted; send JSON text');
        const buf = Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw as ArrayBuffer);
        if (buf.length > maxMessageBytes) throw new Refusal('too-large', `message of ${buf.length} bytes exceeds ${maxMessageBytes}`);
        handle(parseClientMessage(buf.toString('utf8')));
      } catch (e) {
        if (e instanceof Refusal) fail(ws, e.code, e.message, e.fatal);
        else {
          log(`[signal] internal error: ${String(e)}`);
          fail(ws, 'bad-message', 'internal error handling the message', false);
        }
      }
    });

    ws.on('error', (e) => log(`[signal] socket error from ${remote}: ${e.message}`));
    ws.on('close', () => {
      if (!me || !room) return;
      room.members.delete(me.id);
      for (const m of room.members.values()) send(m.socket, { type: 'peer-left', id: me.id });
      log(`[signal] ${me.id} left ${room.name} (${room.members.size} in room)`);
      if (room.members.size === 0) rooms.delete(room.name);
      me = null;
    });
  });

  const heartbeat = setInterval(() => {
    for (const ws of wss.clients) {
      if (!alive.has(ws)) {
        ws.terminate();
        continue;
      }
      alive.delete(ws);
      ws.ping();
    }
  }, opts.heartbeatMs ?? 15_000);
  heartbeat.unref?.();

  const handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', (e) => log(`[signal] upgrade socket error: ${e.message}`));
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  };

  return {
    handleUpgrade,
    attach(server, path = SIGNAL_PATH) {
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        if (isPath(req.url, path)) handleUpgrade(req, socket, head);
      });
    },
    rooms() {
      return [...rooms.values()].map((r) => ({
        room: r.name,
        protected: r.secretHash !== null,
        peers: [...r.members.values()].map((m) => ({ id: m.id, meta: m.meta })),
      }));
    },
    close() {
      clearInterval(heartbeat);
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
