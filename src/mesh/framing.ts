// Splits messages into data-channel-sized frames and puts them back together, with backpressure on
// the channel's bufferedAmount. Chrome refuses data-channel messages over 256 KiB and small
// messages travel faster (MACHINE-NOTES), so frames default to 64 KiB.
//
// Frame (16-byte header): u32 seq (message number on this channel), u32 total (message length),
// u32 offset (of this frame's bytes in the message), u8 lane (which stream of the link the message
// belongs to: ring traffic, leader<->stage traffic, link control), 3 zero bytes, then the bytes. An ordered reliable channel delivers a message's
// frames in order and never interleaves two messages, so the receiver checks exactly that.

export const FRAME_HEADER_BYTES = 16;
export const MAX_LANE = 15;
export const DEFAULT_FRAME_BYTES = 64 * 1024;
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export class FramingError extends Error {
  override readonly name = 'FramingError';
}

/** Splits one message into frames of at most `frameBytes` bytes (header included). */
export function splitFrames(message: Uint8Array, seq: number, frameBytes = DEFAULT_FRAME_BYTES, lane = 0): Uint8Array[] {
  if (!Number.isInteger(lane) || lane < 0 || lane > MAX_LANE) throw new RangeError(`lane ${lane}`);
  const chunk = frameBytes - FRAME_HEADER_BYTES;
  if (chunk <= 0) throw new RangeError(`frame size ${frameBytes} leaves no room for data`);
  const frames: Uint8Array[] = [];
  let offset = 0;
  do {
    const n = Math.min(chunk, message.length - offset);
    const frame = new Uint8Array(FRAME_HEADER_BYTES + n);
    const view = new DataView(frame.buffer);
    view.setUint32(0, seq >>> 0, true);
    view.setUint32(4, message.length, true);
    view.setUint32(8, offset, true);
    view.setUint8(12, lane);
    frame.set(message.subarray(offset, offset + n), FRAME_HEADER_BYTES);
    frames.push(frame);
    offset += n;
  } while (offset < message.length);
  return frames;
}

export interface Reassembled {
  message: Uint8Array;
  lane: number;
}

/** Reassembles frames into messages. Throws FramingError on anything out of order or oversized. */
export class FrameAssembler {
  private current: Uint8Array | null = null;
  private seq = 0;
  private received = 0;
  private expectedSeq: number | null = null;
  private lane = 0;

  constructor(private readonly maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {}

  /** Feeds one frame; returns the completed message when this frame was its last one. */
  push(frame: Uint8Array): Reassembled | null {
    if (frame.length < FRAME_HEADER_BYTES) throw new FramingError(`frame of ${frame.length} bytes is shorter than its header`);
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const seq = view.getUint32(0, true);
    const total = view.getUint32(4, true);
    const offset = view.getUint32(8, true);
    const lane = view.getUint8(12);
    if (lane > MAX_LANE || view.getUint8(13) || view.getUint16(14, true)) throw new FramingError('bad frame header (lane/reserved bytes)');
    const data = frame.subarray(FRAME_HEADER_BYTES);
    if (total > this.maxMessageBytes) throw new FramingError(`message of ${total} bytes exceeds ${this.maxMessageBytes}`);
    if (this.current === null) {
      if (offset !== 0) throw new FramingError(`frame at offset ${offset} of message ${seq} without its start`);
      if (this.expectedSeq !== null && seq !== this.expectedSeq) {
        throw new FramingError(`message ${seq} arrived, expected ${this.expectedSeq}`);
      }
      if (data.length === total) {
        this.expectedSeq = (seq + 1) >>> 0;
        return { message: data, lane }; // single-frame message: no copy
      }
      this.current = new Uint8Array(total);
      this.lane = lane;
      this.seq = seq;
      this.received = 0;
    } else if (seq !== this.seq || offset !== this.received || total !== this.current.length || lane !== this.lane) {
      throw new FramingError(
        `frame (message ${seq}, offset ${offset}, total ${total}) interleaved with message ${this.seq} at offset ${this.received} of ${this.current.length}`,
      );
    }
    if (data.length === 0 || this.received + data.length > total) {
      throw new FramingError(`frame of ${data.length} bytes does not fit message ${seq} (${this.received}/${total})`);
    }
    this.current.set(data, this.received);
    this.received += data.length;
    if (this.received < total) return null;
    const done = this.current;
    this.current = null;
    this.expectedSeq = (seq + 1) >>> 0;
    return { message: done, lane };
  }

  /** Bytes of a message in progress. */
  get pending(): number {
    return this.current ? this.received : 0;
  }
}

/** What FrameSender needs of an RTCDataChannel (and what tests can fake). */
export interface ByteChannel {
  send(data: Uint8Array): void;
  readonly bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  addEventListener(type: 'bufferedamountlow', listener: () => void): void;
  removeEventListener(type: 'bufferedamountlow', listener: () => void): void;
}

export interface FrameSenderOptions {
  frameBytes?: number;
  /** Stop handing frames to the channel while its bufferedAmount is above this. Default 1 MiB. */
  highWaterMark?: number;
  /** Resume when the channel reports bufferedamountlow at this level. Default 256 KiB. */
  lowWaterMark?: number;
}

interface Pending {
  lane: number;
  frames: Uint8Array[];
  next: number;
  resolve: () => void;
  reject: (e: Error) => void;
}

/**
 * Sends messages as frames in order, never letting the channel buffer much more than the high
 * water mark. `send` resolves when the message's last frame has been handed to the channel.
 */
export class FrameSender {
  private readonly queue: Pending[] = [];
  private seq = 0;
  private waiting = false;
  private failed: Error | null = null;
  private readonly frameBytes: number;
  private readonly high: number;
  private pollTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly onLow = (): void => {
    this.waiting = false;
    this.pump();
  };

  constructor(
    private readonly channel: ByteChannel,
    opts: FrameSenderOptions = {},
  ) {
    this.frameBytes = opts.frameBytes ?? DEFAULT_FRAME_BYTES;
    this.high = opts.highWaterMark ?? 1024 * 1024;
    channel.bufferedAmountLowThreshold = opts.lowWaterMark ?? 256 * 1024;
    channel.addEventListener('bufferedamountlow', this.onLow);
  }

  send(message: Uint8Array, lane = 0): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    const frames = splitFrames(message, this.seq, this.frameBytes, lane);
    this.seq = (this.seq + 1) >>> 0;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ lane, frames, next: 0, resolve, reject });
      if (!this.waiting) this.pump();
    });
  }

  /** Bytes queued here, not yet handed to the channel. */
  get queuedBytes(): number {
    let n = 0;
    for (const p of this.queue) for (let i = p.next; i < p.frames.length; i++) n += p.frames[i].length;
    return n;
  }

  /** Rejects everything queued and refuses further sends. */
  close(reason = new Error('channel closed')): void {
    if (!this.failed) this.failed = reason;
    this.channel.removeEventListener('bufferedamountlow', this.onLow);
    if (this.pollTimer) clearTimeout(this.pollTimer);
    for (const p of this.queue.splice(0)) p.reject(this.failed);
  }

  private pump(): void {
    while (this.queue.length && !this.failed) {
      if (this.channel.bufferedAmount > this.high) {
        this.waiting = true;
        // bufferedamountlow fires when the buffer falls to the threshold; poll too, in case an
        // implementation misses it (it costs one timer per stall).
        if (this.pollTimer) clearTimeout(this.pollTimer);
        this.pollTimer = setTimeout(() => {
          this.pollTimer = null;
          if (this.waiting) this.onLow();
        }, 50);
        return;
      }
      const p = this.queue[0];
      try {
        this.channel.send(p.frames[p.next]);
      } catch (e) {
        this.close(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      p.frames[p.next++] = EMPTY;
      if (p.next === p.frames.length) {
        this.queue.shift();
        p.resolve();
      }
    }
  }
}

const EMPTY = new Uint8Array(0);
