// JSON messages between a tab's signalling client (src/mesh/signal-client.ts) and the signalling
// service (src/server/signalling.ts). No Node imports: the browser imports these types too.

export const SIGNAL_PATH = '/signal';
export const SIGNAL_VERSION = 1;

/** What a tab tells the room about itself (role, name). Small and flat. */
export type PeerMeta = Record<string, string | number | boolean>;

export interface PeerInfo {
  id: string;
  meta: PeerMeta;
}

/** An ICE server as RTCPeerConnection takes it. */
export interface IceServerConfig {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export type ClientMessage =
  | { type: 'join'; version: number; room: string; secret?: string; meta?: PeerMeta }
  /** Relay `data` (an SDP or ICE object) to peer `to` in the same room. */
  | { type: 'signal'; to: string; data: Record<string, unknown> }
  | { type: 'ping' };

export type ServerMessage =
  /** Joined: your id, who else is in the room (in join order), the ICE servers to use. */
  | { type: 'welcome'; id: string; room: string; peers: PeerInfo[]; iceServers: IceServerConfig[]; protected: boolean }
  | { type: 'peer-joined'; peer: PeerInfo }
  | { type: 'peer-left'; id: string }
  | { type: 'signal'; from: string; data: Record<string, unknown> }
  | { type: 'pong' }
  /** `fatal`: the server closes the socket right after this message. */
  | { type: 'error'; code: SignalErrorCode; message: string; fatal: boolean };

export type SignalErrorCode =
  | 'bad-json'
  | 'bad-message'
  | 'too-large'
  | 'bad-version'
  | 'not-joined'
  | 'already-joined'
  | 'secret-required'
  | 'wrong-secret'
  | 'room-full'
  | 'server-full'
  | 'unknown-peer'
  | 'rate-limited'
  /** Too many open signalling connections from this address. */
  | 'too-many-connections'
  /** Too many join attempts, or too many wrong secrets, from this address: wait and retry. */
  | 'throttled'
  /** The socket sent no `join` in time. */
  | 'join-timeout';

/** WebSocket close codes the server uses after a fatal error. */
export const CLOSE_CODES: Partial<Record<SignalErrorCode, number>> & { default: number } = {
  default: 4000,
  'secret-required': 4003,
  'wrong-secret': 4003,
  'room-full': 4004,
  'server-full': 4004,
  'bad-version': 4005,
  'rate-limited': 4008,
  'join-timeout': 4008,
  'too-many-connections': 4029,
  throttled: 4029,
};

export const ROOM_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const MAX_SECRET_LENGTH = 256;
export const MAX_META_KEYS = 16;
export const MAX_META_VALUE_LENGTH = 128;
