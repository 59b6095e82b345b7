// The mesh transport: signalling client, WebRTC links, the ring, the wire protocol and framing.
export { SignalClient, SignallingError, defaultSignalUrl } from './signal-client.ts';
export type { SignalClientOptions, SignalEvents, WebSocketLike, WebSocketFactory, IceServerConfig, PeerInfo, PeerMeta } from './signal-client.ts';
export { Ring, RingError } from './ring.ts';
export type { RingOptions, LeadOptions, RingEvents, PrevHandler, DirectHandler } from './ring.ts';
export { Link, LANE, percentile } from './peer.ts';
export type { Lane, LinkOptions, LinkTuning, LinkStats, LinkCloseEvent, LinkCloseKind, LinkEvents } from './peer.ts';
export {
  encodeMessage,
  decodeMessage,
  decodeHeader,
  peekType,
  encodeLevel,
  encodeResult,
  encodeConfig,
  ProtocolError,
  PROTOCOL_MAGIC,
  PROTOCOL_VERSION,
  HEADER_BYTES,
  LIMITS,
} from './protocol.ts';
export type { MeshMessage, MeshMessageType, MeshRole, PayloadDtype, EncodeOptions, DecodeOptions, MessageHeader, ProtocolErrorCode } from './protocol.ts';
export { FrameSender, FrameAssembler, FramingError, splitFrames, FRAME_HEADER_BYTES, DEFAULT_FRAME_BYTES } from './framing.ts';
export type { ByteChannel, FrameSenderOptions, Reassembled } from './framing.ts';
