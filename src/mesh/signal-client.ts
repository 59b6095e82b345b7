// A tab's side of the signalling service: join a room, learn who is there, exchange SDP/ICE.

import { Emitter } from './emitter.ts';
import { SpecpipeError } from '../common/errors.ts';
import { SIGNAL_PATH, SIGNAL_VERSION, type ApiClientMessage, type ApiServerMessage, type ClientMessage, type IceServerConfig, type PeerInfo, type PeerMeta, type ServerMessage, type SignalErrorCode } from '../server/signal-protocol.ts';

export type { IceServerConfig, PeerInfo, PeerMeta } from '../server/signal-protocol.ts';

/** Why the signalling service refused or dropped this tab: the server's SignalErrorCode, or a local one. */
export type SignallingReason = SignalErrorCode | 'connect-failed' | 'closed' | 'timeout';

/**
 * The room refused this tab (wrong secret, room full, ...) or the signalling connection failed:
 * code 'room'; `reason` says which, for a program, `message` for a person.
 */
export class SignallingError extends SpecpipeError {
  override readonly name = 'SignallingError';
  constructor(
    readonly reason: SignallingReason,
    message: string,
  ) {
    super('room', message);
  }
}

/** The minimal WebSocket surface used here (the browser's, or the `ws` package's in Node). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type WebSocketFactory = (url: string) => WebSocketLike;

export interface SignalClientOptions {
  room: string;
  secret?: string;
  /** The server's token for its own API leader (src/app/api-relay.ts); only that leader has it. */
  apiToken?: string;
  /** What the room learns about this tab (e.g. { role: 'stage', name: 'laptop-2' }). */
  meta?: PeerMeta;
  /** ws(s)://host/signal; default: this page's origin + /signal. */
  url?: string;
  /** For Node: (url) => new (require('ws'))(url). Default: the global WebSocket. */
  createWebSocket?: WebSocketFactory;
  timeoutMs?: number;
}

export interface SignalEvents extends Record<string, unknown> {
  'peer-joined': PeerInfo;
  'peer-left': string;
  signal: { from: string; data: Record<string, unknown> };
  /** The signalling connection is gone (the mesh's peer links may live on). */
  close: SignallingError;
  /** A non-fatal error reply from the server (e.g. unknown-peer). */
  error: SignallingError;
  /** To the room's API leader: an OpenAI-style request to run, or an abort (unchecked: see apiRequestProblem). */
  api: ApiServerMessage;
}

/** The signalling URL for this page: wss://host/signal on https pages, ws:// otherwise. */
export function defaultSignalUrl(): string {
  const loc = globalThis.location;
  if (!loc) throw new Error('no page location: pass SignalClientOptions.url');
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}${SIGNAL_PATH}`;
}

export class SignalClient extends Emitter<SignalEvents> {
  /** Other members of the room, in join order. */
  readonly peers = new Map<string, PeerInfo>();
  private closed = false;

  private constructor(
    private readonly ws: WebSocketLike,
    readonly id: string,
    readonly room: string,
    readonly iceServers: IceServerConfig[],
    readonly isProtected: boolean,
    peers: PeerInfo[],
  ) {
    super();
    for (const p of peers) this.peers.set(p.id, p);
  }

  /** Opens the socket and joins; rejects with SignallingError (reason e.g. 'wrong-secret') on refusal. */
  static connect(opts: SignalClientOptions): Promise<SignalClient> {
    const url = opts.url ?? defaultSignalUrl();
    const make: WebSocketFactory =
      opts.createWebSocket ??
      ((u) => {
        if (typeof WebSocket === 'undefined') throw new Error('no global WebSocket: pass createWebSocket');
        return new WebSocket(u) as unknown as WebSocketLike;
      });
    return new Promise((resolve, reject) => {
      const ws = make(url);
      let client: SignalClient | null = null;
      let refusal: SignallingError | null = null;
      const timer = setTimeout(() => {
        refusal = new SignallingError('timeout', `no answer from the signalling server at ${url} within ${opts.timeoutMs ?? 10_000} ms`);
        ws.close();
        reject(refusal);
      }, opts.timeoutMs ?? 10_000);
      ws.onopen = () => {
        const join: ClientMessage = { type: 'join', version: SIGNAL_VERSION, room: opts.room, meta: opts.meta ?? {} };
        if (opts.secret) join.secret = opts.secret;
        if (opts.apiToken) join.apiToken = opts.apiToken;
        ws.send(JSON.stringify(join));
      };
      ws.onmessage = (ev) => {
        let msg: ServerMessage;
        try {
          msg = JSON.parse(String(ev.data)) as ServerMessage;
        } catch {
          return;
        }
        if (client) return client.handle(msg);
        if (msg.type === 'welcome') {
          clearTimeout(timer);
          client = new SignalClient(ws, msg.id, msg.room, msg.iceServers, msg.protected, msg.peers);
          resolve(client);
        } else if (msg.type === 'error') {
          refusal = new SignallingError(msg.code, msg.message);
          if (!msg.fatal) ws.close();
        }
      };
      ws.onerror = () => {
        /* onclose follows with the details */
      };
      ws.onclose = (ev) => {
        clearTimeout(timer);
        if (client) return client.handleClose(ev.code, ev.reason);
        reject(refusal ?? new SignallingError('connect-failed', `could not reach the signalling server at ${url} (close code ${ev.code})`));
      };
    });
  }

  /** Relays `data` (SDP or ICE) to peer `to`. */
  signal(to: string, data: Record<string, unknown>): void {
    this.send({ type: 'signal', to, data });
  }

  /** The API leader's answer to a relayed request (src/app/api-relay.ts). */
  sendApi(msg: ApiClientMessage): void {
    this.send(msg);
  }

  close(): void {
    this.closed = true;
    this.ws.close(1000, 'bye');
  }

  get connected(): boolean {
    return !this.closed && this.ws.readyState === 1;
  }

  private send(msg: ClientMessage): void {
    if (this.ws.readyState === 1) this.ws.send(JSON.stringify(msg));
  }

  private handle(msg: ServerMessage): void {
    switch (msg.type) {
      case 'peer-joined':
        this.peers.set(msg.peer.id, msg.peer);
        this.emit('peer-joined', msg.peer);
        break;
      case 'peer-left':
        this.peers.delete(msg.id);
        this.emit('peer-left', msg.id);
        break;
      case 'signal':
        this.emit('signal', { from: msg.from, data: msg.data });
        break;
      case 'error':
        this.emit('error', new SignallingError(msg.code, msg.message));
        break;
      case 'api-request':
      case 'api-abort':
        this.emit('api', msg);
        break;
      default:
        break;
    }
  }

  private handleClose(code: number, reason: string): void {
    this.closed = true;
    this.emit('close', new SignallingError('closed', `signalling connection closed (${code}${reason ? `: ${reason}` : ''})`));
  }
}
