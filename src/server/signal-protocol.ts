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
  /** `apiToken`: the server's token for its own API leader (`--leader headless`); never relayed. */
  | { type: 'join'; version: number; room: string; secret?: string; meta?: PeerMeta; apiToken?: string }
  /** Relay `data` (an SDP or ICE object) to peer `to` in the same room. */
  | { type: 'signal'; to: string; data: Record<string, unknown> }
  | { type: 'ping' }
  /** From the API leader: the relay's answers (below). */
  | ApiClientMessage;

export type ServerMessage =
  /** Joined: your id, who else is in the room (in join order), the ICE servers to use. */
  | { type: 'welcome'; id: string; room: string; peers: PeerInfo[]; iceServers: IceServerConfig[]; protected: boolean }
  | { type: 'peer-joined'; peer: PeerInfo }
  | { type: 'peer-left'; id: string }
  | { type: 'signal'; from: string; data: Record<string, unknown> }
  | { type: 'pong' }
  /** `fatal`: the server closes the socket right after this message. */
  | { type: 'error'; code: SignalErrorCode; message: string; fatal: boolean }
  /** To the API leader: requests to run and aborts (below). */
  | ApiServerMessage;

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

// The OpenAI-compatible API's relay (src/server/api-server.ts <-> src/app/api-relay.ts): the server
// hands each HTTP request, already validated, to the room's API leader (the member that joined with
// meta { role: 'api' }) and streams back what the leader generates. The server owns the OpenAI
// semantics (stop sequences, formatting, usage); the leader renders prompts and runs its Engine.

/** The `meta.role` of the member that serves the API; `meta.model` names its model. */
export const API_ROLE = 'api';

/** One message of a chat request. */
export interface ApiChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** A generation request as the leader receives it. */
export type ApiGenerationRequest = ({ kind: 'chat'; messages: ApiChatMessage[] } | { kind: 'completion'; prompt: string }) & {
  maxTokens: number;
  /** 0: greedy. */
  temperature: number;
  /** 1: off. */
  topP: number;
  /** u32. */
  seed: number;
};

/** Why a generation ended, as OpenAI's `finish_reason` says it. */
export type ApiFinishReason = 'stop' | 'length';

/** Leader -> server. */
export type ApiClientMessage =
  /** The request left the leader's queue and runs; its prompt is `promptTokens` tokens. */
  | { type: 'api-start'; id: string; promptTokens: number }
  /** Text of `tokens` more generated tokens (text may be '' while a character is incomplete). */
  | { type: 'api-chunk'; id: string; text: string; tokens: number }
  | { type: 'api-done'; id: string; finish: ApiFinishReason; promptTokens: number; completionTokens: number }
  /** `status`: 400 when the request cannot run on this model (prompt too long, ...), 500/503 otherwise. */
  | { type: 'api-error'; id: string; status: 400 | 500 | 503; message: string };

/** Server -> leader. */
export type ApiServerMessage = { type: 'api-request'; id: string; request: ApiGenerationRequest } | { type: 'api-abort'; id: string };

/** Limits both sides check the relayed requests against. */
export const API_MAX_MESSAGES = 256;
export const API_MAX_TEXT_CHARS = 256 * 1024;
export const API_MAX_TOKENS = 1 << 16;
export const API_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const CHAT_ROLES: readonly string[] = ['system', 'user', 'assistant'];

/**
 * The relayed request's shape, checked (the leader does not trust the wire either); returns the
 * reason it is refused, or null. The bounds are those the server's parser enforces.
 */
export function apiRequestProblem(v: unknown): string | null {
  if (!isRecord(v)) return 'request must be an object';
  if (!Number.isInteger(v.maxTokens) || (v.maxTokens as number) < 1 || (v.maxTokens as number) > API_MAX_TOKENS) return `maxTokens must be an integer in 1..${API_MAX_TOKENS}`;
  if (typeof v.temperature !== 'number' || !(v.temperature >= 0 && v.temperature <= 2)) return 'temperature must be a number in 0..2';
  if (typeof v.topP !== 'number' || !(v.topP > 0 && v.topP <= 1)) return 'topP must be a number in (0, 1]';
  if (!Number.isInteger(v.seed) || (v.seed as number) < 0 || (v.seed as number) > 0xffffffff) return 'seed must be a u32';
  if (v.kind === 'completion') return typeof v.prompt === 'string' && v.prompt.length <= API_MAX_TEXT_CHARS ? null : `prompt must be a string of at most ${API_MAX_TEXT_CHARS} characters`;
  if (v.kind !== 'chat') return 'kind must be "chat" or "completion"';
  const m = v.messages;
  if (!Array.isArray(m) || m.length === 0 || m.length > API_MAX_MESSAGES) return `messages must be an array of 1..${API_MAX_MESSAGES} messages`;
  let chars = 0;
  for (const x of m) {
    if (!isRecord(x) || !CHAT_ROLES.includes(String(x.role)) || typeof x.content !== 'string') return 'each message must be { role: system|user|assistant, content: string }';
    chars += x.content.length;
  }
  return chars <= API_MAX_TEXT_CHARS ? null : `messages longer than ${API_MAX_TEXT_CHARS} characters in all`;
}
