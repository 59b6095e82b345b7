// One WebRTC link to one other tab: a simple-peer connection (lite build, trickle ICE) with one
// ordered reliable data channel, carrying protocol messages as frames on lanes. The link pings its
// peer, measures round trips, notices silence, applies the optional per-hop delay, and closes itself
// with a clear reason on any malformed message.

import SimplePeer from '@thaunknown/simple-peer/lite.js';
import { percentile } from '../common/numerics.ts';
import { Emitter } from './emitter.ts';
import { FrameAssembler, FrameSender, FramingError, DEFAULT_FRAME_BYTES, type ByteChannel } from './framing.ts';
import { decodeHeader, decodeMessage, encodeMessage, ProtocolError, LIMITS, type MeshMessage } from './protocol.ts';
import type { IceServerConfig } from './signal-client.ts';
import { errorMessage } from '../common/errors.ts';

/** Streams of a link: ring traffic (prev -> next), leader<->stage traffic, and the link's own control. */
export const LANE = { ring: 0, direct: 1, control: 2 } as const;
export type Lane = (typeof LANE)[keyof typeof LANE];

export interface LinkTuning {
  /** Fixed delay added to every message this side sends (simulated network), in ms. Default 0. */
  hopDelayMs?: number;
  /** Ping period, ms. Default 500. */
  pingIntervalMs?: number;
  /** Silence after which the peer counts as lost, ms (hop delay added). Default 3000. */
  timeoutMs?: number;
  /** Give up connecting after this long, ms. Default 20000. */
  connectTimeoutMs?: number;
  frameBytes?: number;
  highWaterMark?: number;
  lowWaterMark?: number;
  maxMessageBytes?: number;
}

export interface LinkOptions extends LinkTuning {
  /** Id of the other tab (its signalling id). */
  remote: string;
  initiator: boolean;
  iceServers: IceServerConfig[];
  /** Sends SDP/ICE to the other tab through the signalling service. */
  sendSignal: (data: Record<string, unknown>) => void;
}

export type LinkCloseKind =
  /** The data channel or peer connection closed (tab closed, network gone). */
  | 'closed'
  /** The peer said goodbye. */
  | 'bye'
  /** No message (not even a pong) for timeoutMs. */
  | 'timeout'
  /** The peer sent bytes that are not a valid message of this protocol version. */
  | 'protocol'
  /** The peer reported an error about what we sent, then closed. */
  | 'remote-error'
  /** Connection setup failed or took too long. */
  | 'connect-failed'
  /** Closed by this side. */
  | 'local';

export interface LinkCloseEvent {
  peer: string;
  kind: LinkCloseKind;
  message: string;
}

export interface LinkStats {
  peer: string;
  state: 'connecting' | 'open' | 'closed';
  /** Round trips of pings (each includes 2 x hopDelayMs when set), ms, over the last 256 pings. */
  rttSamples: number;
  rttP50: number | null;
  rttP95: number | null;
  rttMax: number | null;
  messagesSent: number;
  messagesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Bytes waiting for the channel (backpressure) plus what the channel has buffered. */
  queuedBytes: number;
}

export interface LinkEvents extends Record<string, unknown> {
  open: void;
  message: { lane: Lane; bytes: Uint8Array; msg: MeshMessage };
  close: LinkCloseEvent;
}

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

export class Link extends Emitter<LinkEvents> {
  readonly remote: string;
  state: 'connecting' | 'open' | 'closed' = 'connecting';
  closeEvent: LinkCloseEvent | null = null;
  /** Resolves when the data channel is open; rejects with the close event's message if it never opens. */
  readonly opened: Promise<void>;

  private readonly peer: SimplePeer;
  private sender: FrameSender | null = null;
  private channel: RTCDataChannel | null = null;
  private readonly assembler: FrameAssembler;
  private readonly opts: Required<LinkTuning>;
  private readonly delayed: { at: number; bytes: Uint8Array; lane: Lane; resolve: () => void; reject: (e: Error) => void }[] = [];
  private delayTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private openPoll: ReturnType<typeof setInterval> | null = null;
  private localSdp = false;
  private readonly heldCandidates: Record<string, unknown>[] = [];
  private pingSeq = 0;
  private lastHeard = now();
  private lastTick = now();
  private readonly rtts: number[] = [];
  private counters = { messagesSent: 0, messagesReceived: 0, bytesSent: 0, bytesReceived: 0 };
  private resolveOpen!: () => void;
  private rejectOpen!: (e: Error) => void;

  constructor(opts: LinkOptions) {
    super();
    this.remote = opts.remote;
    this.opts = {
      hopDelayMs: opts.hopDelayMs ?? 0,
      pingIntervalMs: opts.pingIntervalMs ?? 500,
      timeoutMs: opts.timeoutMs ?? 3000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 20_000,
      frameBytes: opts.frameBytes ?? DEFAULT_FRAME_BYTES,
      highWaterMark: opts.highWaterMark ?? 1024 * 1024,
      lowWaterMark: opts.lowWaterMark ?? 256 * 1024,
      maxMessageBytes: opts.maxMessageBytes ?? LIMITS.maxMessageBytes,
    };
    this.assembler = new FrameAssembler(this.opts.maxMessageBytes);
    this.opened = new Promise((resolve, reject) => {
      this.resolveOpen = resolve;
      this.rejectOpen = reject;
    });
    this.opened.catch(() => {}); // closing before open is reported through 'close' too

    this.peer = new SimplePeer({
      initiator: opts.initiator,
      trickle: true,
      config: { iceServers: opts.iceServers },
      channelConfig: { ordered: true },
    });
    this.peer.on('signal', (data) => {
      opts.sendSignal(data);
      if (data.type === 'offer' || data.type === 'answer') {
        setTimeout(() => {
          this.localSdp = true;
          for (const c of this.heldCandidates.splice(0)) this.signal(c);
        }, 50);
      }
    });
    this.peer.on('connect', () => this.onConnect());
    this.peer.on('data', (chunk) => this.onFrame(chunk));
    this.peer.on('close', () => this.close('closed', `connection to ${this.remote} closed`, false));
    this.peer.on('error', (e) => this.close(this.state === 'open' ? 'closed' : 'connect-failed', `connection to ${this.remote} failed: ${e.message}`, false));
    // simple-peer reports 'connect' only after it has looked up the candidate pair (getStats),
    // which can lag the data channel opening by seconds; watch the channel itself as well.
    this.openPoll = setInterval(() => this.pollOpen(), 20);
    this.connectTimer = setTimeout(() => {
      if (this.state === 'connecting') this.close('connect-failed', `no connection to ${this.remote} within ${this.opts.connectTimeoutMs} ms`, false);
    }, this.opts.connectTimeoutMs);
  }

  /** Feeds SDP/ICE from the signalling service. */
  signal(data: Record<string, unknown>): void {
    if (this.state === 'closed') return;
    // Hold remote ICE candidates until this side has its own description: node-datachannel (tests
    // in Node) refuses candidates that arrive before its ICE transport exists. Harmless in browsers.
    if (data.candidate && !this.localSdp) {
      this.heldCandidates.push(data);
      return;
    }
    // Every candidate also travels on its own (trickle), so drop copies embedded in the SDP:
    // node-datachannel may reject an SDP whose candidates arrive before its ICE transport exists.
    if (typeof data.sdp === 'string') data = { ...data, sdp: data.sdp.replace(/^a=(candidate|end-of-candidates).*\r?\n/gm, '') };
    try {
      this.peer.signal(data);
    } catch (e) {
      this.close('connect-failed', `bad signal from ${this.remote}: ${errorMessage(e)}`, false);
    }
  }

  /** Sends an encoded message on a lane, after the hop delay. Its header is checked (magic, version, lengths). */
  send(bytes: Uint8Array, lane: Lane = LANE.ring): Promise<void> {
    decodeHeader(bytes, { maxBytes: this.opts.maxMessageBytes }); // throws ProtocolError here rather than on the peer
    return this.enqueue(bytes, lane);
  }

  sendMessage(msg: MeshMessage, lane: Lane = LANE.ring): Promise<void> {
    return this.enqueue(encodeMessage(msg), lane);
  }

  /** Test hook: sends arbitrary bytes as a framed message, unchecked (to provoke the peer's decoder). */
  sendUnchecked(bytes: Uint8Array, lane: Lane = LANE.ring): Promise<void> {
    return this.enqueue(bytes, lane);
  }

  /** Test hook: puts raw bytes on the data channel, bypassing framing. */
  sendRawFrame(bytes: Uint8Array): void {
    this.channel?.send(bytes as Uint8Array<ArrayBuffer>);
  }

  /** Sets the simulated per-hop delay for messages sent from now on, ms. */
  setHopDelay(ms: number): void {
    this.opts.hopDelayMs = ms;
  }

  /** Forgets the round-trip samples (e.g. to measure an idle link after a burst of traffic). */
  resetStats(): void {
    this.rtts.length = 0;
  }

  stats(): LinkStats {
    return {
      peer: this.remote,
      state: this.state,
      rttSamples: this.rtts.length,
      rttP50: percentile(this.rtts, 0.5),
      rttP95: percentile(this.rtts, 0.95),
      rttMax: this.rtts.length ? Math.max(...this.rtts) : null,
      ...this.counters,
      queuedBytes: (this.sender?.queuedBytes ?? 0) + (this.channel?.bufferedAmount ?? 0),
    };
  }

  /** Says goodbye and closes. */
  async bye(reason = 'leaving'): Promise<void> {
    if (this.state === 'open' && this.sender) {
      await Promise.race([this.sender.send(encodeMessage({ type: 'bye', reason }), LANE.control).catch(() => {}), sleep(200)]);
      await this.flush(300);
    }
    this.close('local', `closed: ${reason}`, false);
  }

  /** Closes the link (idempotent) and reports it once through 'close'. */
  close(kind: LinkCloseKind, message: string, notify = false): void {
    if (this.state === 'closed') return;
    const wasOpen = this.state === 'open';
    this.state = 'closed';
    this.closeEvent = { peer: this.remote, kind, message };
    for (const t of [this.delayTimer, this.connectTimer]) if (t) clearTimeout(t);
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.openPoll) clearInterval(this.openPoll);
    const err = new Error(message);
    for (const d of this.delayed.splice(0)) d.reject(err);
    const finish = (): void => {
      this.sender?.close(err);
      this.peer.destroy();
    };
    if (notify && wasOpen && this.sender) {
      // Tell the peer why before closing; give the bytes a moment to leave.
      this.sender
        .send(encodeMessage({ type: 'error', code: kind, message: message.slice(0, 900) }), LANE.control)
        .catch(() => {})
        .then(() => this.flush(500))
        // Let the peer read the error and hang up first (closing right away can lose the message; a
        // tab busy on a loaded machine may take a second or two to read it).
        .then(() => this.waitChannelClosed(3000))
        .finally(finish);
    } else {
      finish();
    }
    this.rejectOpen(err);
    this.emit('close', this.closeEvent);
  }

  private async waitChannelClosed(maxMs: number): Promise<void> {
    const t0 = now();
    while (this.channel && this.channel.readyState === 'open' && now() - t0 < maxMs) await sleep(20);
  }

  private async flush(maxMs: number): Promise<void> {
    const t0 = now();
    while (this.channel && this.channel.readyState === 'open' && this.channel.bufferedAmount > 0 && now() - t0 < maxMs) await sleep(10);
  }

  private enqueue(bytes: Uint8Array, lane: Lane): Promise<void> {
    if (this.state === 'closed') return Promise.reject(new Error(this.closeEvent?.message ?? 'link closed'));
    this.counters.messagesSent++;
    this.counters.bytesSent += bytes.length;
    return new Promise<void>((resolve, reject) => {
      this.delayed.push({ at: now() + this.opts.hopDelayMs, bytes, lane, resolve, reject });
      this.pumpDelayed();
    });
  }

  /** Hands messages whose hop delay has passed to the framer, in order; waits for the channel to open. */
  private pumpDelayed(): void {
    if (this.delayTimer || !this.sender) return;
    const t = now();
    while (this.delayed.length && this.delayed[0].at <= t) {
      const d = this.delayed.shift()!;
      this.sender.send(d.bytes, d.lane).then(d.resolve, d.reject);
    }
    if (this.delayed.length) {
      this.delayTimer = setTimeout(() => {
        this.delayTimer = null;
        this.pumpDelayed();
      }, Math.max(0, this.delayed[0].at - t));
    }
  }

  private pollOpen(): void {
    if (this.state === 'connecting' && this.peer._channel?.readyState === 'open') this.onConnect();
  }

  private onConnect(): void {
    if (this.state !== 'connecting') return;
    const channel = this.peer._channel;
    if (!channel) return this.close('connect-failed', 'connected without a data channel', false);
    this.channel = channel;
    this.sender = new FrameSender(channel as unknown as ByteChannel, {
      frameBytes: this.opts.frameBytes,
      highWaterMark: this.opts.highWaterMark,
      lowWaterMark: this.opts.lowWaterMark,
    });
    this.state = 'open';
    if (this.connectTimer) clearTimeout(this.connectTimer);
    if (this.openPoll) clearInterval(this.openPoll);
    this.lastHeard = this.lastTick = now();
    this.pingTimer = setInterval(() => this.tick(), this.opts.pingIntervalMs);
    this.resolveOpen();
    this.emit('open', undefined);
    this.pumpDelayed();
  }

  private tick(): void {
    // A late tick means this tab's own thread was busy (e.g. uploading weights): what the peer sent
    // meanwhile is still queued, so the stall does not count as the peer's silence.
    const t = now();
    if (t - this.lastTick > 2 * this.opts.pingIntervalMs) this.lastHeard = Math.max(this.lastHeard, t - this.opts.pingIntervalMs);
    this.lastTick = t;
    const silentFor = t - this.lastHeard;
    const limit = this.opts.timeoutMs + 2 * this.opts.hopDelayMs;
    if (silentFor > limit) {
      this.close('timeout', `${this.remote} did not answer for ${Math.round(silentFor)} ms`, false);
      return;
    }
    this.enqueue(encodeMessage({ type: 'ping', seq: this.pingSeq++ >>> 0, time: now() }), LANE.control).catch(() => {});
  }

  private onFrame(chunk: Uint8Array): void {
    if (this.state === 'closed') return;
    this.pollOpen();
    this.lastHeard = now();
    let whole;
    let msg: MeshMessage;
    try {
      whole = this.assembler.push(chunk);
      if (!whole) return;
      msg = decodeMessage(whole.message, { maxBytes: this.opts.maxMessageBytes });
    } catch (e) {
      if (e instanceof ProtocolError || e instanceof FramingError) {
        this.close('protocol', `malformed message from ${this.remote}: ${e.message}`, true);
        return;
      }
      throw e;
    }
    this.counters.messagesReceived++;
    this.counters.bytesReceived += whole.message.length;
    const lane = whole.lane as Lane;
    if (lane === LANE.control) {
      switch (msg.type) {
        case 'ping':
          this.enqueue(encodeMessage({ type: 'pong', seq: msg.seq, time: msg.time }), LANE.control).catch(() => {});
          return;
        case 'pong':
          this.rtts.push(now() - msg.time);
          if (this.rtts.length > 256) this.rtts.shift();
          return;
        case 'error':
          this.close('remote-error', `${this.remote} closed the link: ${msg.code}: ${msg.message}`, false);
          return;
        case 'bye':
          this.close('bye', `${this.remote} left: ${msg.reason}`, false);
          return;
        default:
          break; // hello/assign/ready: the ring's business
      }
    } else if (lane !== LANE.ring && lane !== LANE.direct) {
      this.close('protocol', `malformed message from ${this.remote}: unknown lane ${lane}`, true);
      return;
    }
    this.emit('message', { lane, bytes: whole.message, msg });
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
