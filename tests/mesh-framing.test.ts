import { describe, expect, it } from 'vitest';
import { FrameAssembler, FrameSender, FramingError, splitFrames, FRAME_HEADER_BYTES, type ByteChannel } from '../src/mesh/framing.ts';

/** A fake data channel that drains `rate` bytes per tick and fires bufferedamountlow like Chrome. */
class FakeChannel implements ByteChannel {
  bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  maxBuffered = 0;
  sent: Uint8Array[] = [];
  private listeners = new Set<() => void>();
  send(data: Uint8Array): void {
    if (data.length > 256 * 1024) throw new Error('too big for a data channel');
    this.sent.push(data.slice());
    this.bufferedAmount += data.length;
    this.maxBuffered = Math.max(this.maxBuffered, this.bufferedAmount);
  }
  drain(bytes: number): void {
    const before = this.bufferedAmount;
    this.bufferedAmount = Math.max(0, this.bufferedAmount - bytes);
    if (before > this.bufferedAmountLowThreshold && this.bufferedAmount <= this.bufferedAmountLowThreshold) {
      for (const l of this.listeners) l();
    }
  }
  addEventListener(_t: 'bufferedamountlow', l: () => void): void {
    this.listeners.add(l);
  }
  removeEventListener(_t: 'bufferedamountlow', l: () => void): void {
    this.listeners.delete(l);
  }
}

const same = (a: Uint8Array | null | undefined, b: Uint8Array): boolean => !!a && Buffer.compare(a, b) === 0;

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('framing', () => {
  it('splits and reassembles messages of any size', () => {
    for (const n of [0, 1, 100, 64 * 1024 - FRAME_HEADER_BYTES, 64 * 1024, 200_000, 1_000_000]) {
      const msg = bytes(n, n);
      const frames = splitFrames(msg, 5);
      for (const f of frames) expect(f.length).toBeLessThanOrEqual(64 * 1024);
      const a = new FrameAssembler();
      const outs = frames.map((f) => a.push(f));
      expect(outs.slice(0, -1).every((o) => o === null)).toBe(true);
      expect(same(outs.at(-1)?.message, msg)).toBe(true);
    }
  });

  it('carries the lane of each message', () => {
    const a = new FrameAssembler();
    const big = splitFrames(bytes(100_000, 1), 0, 64 * 1024, 2);
    expect(a.push(big[0])).toBeNull();
    expect(a.push(big[1])?.lane).toBe(2);
    expect(a.push(splitFrames(bytes(5, 1), 1, 64 * 1024, 1)[0])?.lane).toBe(1);
    const bad = splitFrames(bytes(5, 1), 2)[0];
    bad[13] = 1;
    expect(() => a.push(bad)).toThrow(/reserved/);
  });

  it('rejects interleaved, skipped, oversized and short frames', () => {
    const f1 = splitFrames(bytes(200_000, 1), 0);
    const f2 = splitFrames(bytes(200_000, 2), 1);
    const a = new FrameAssembler();
    a.push(f1[0]);
    expect(() => a.push(f2[0])).toThrow(FramingError);
    expect(() => new FrameAssembler().push(f1[1])).toThrow(FramingError);
    expect(() => new FrameAssembler(1000).push(f1[0])).toThrow(/exceeds/);
    expect(() => new FrameAssembler().push(new Uint8Array(5))).toThrow(FramingError);
    const b = new FrameAssembler();
    b.push(splitFrames(bytes(10, 0), 0)[0]);
    expect(() => b.push(splitFrames(bytes(10, 0), 2)[0])).toThrow(/expected 1/);
  });

  it('keeps bufferedAmount under the high water mark and delivers in order', async () => {
    const ch = new FakeChannel();
    const sender = new FrameSender(ch, { highWaterMark: 256 * 1024, lowWaterMark: 64 * 1024 });
    const msgs = Array.from({ length: 20 }, (_, i) => bytes(100_000 + i, i));
    const done = Promise.all(msgs.map((m) => sender.send(m)));
    const timer = setInterval(() => ch.drain(50_000), 1);
    await done;
    clearInterval(timer);
    expect(ch.maxBuffered).toBeLessThanOrEqual(256 * 1024 + 64 * 1024);
    const a = new FrameAssembler();
    const got = ch.sent.map((f) => a.push(f)?.message ?? null).filter((m): m is Uint8Array => m !== null);
    expect(got.length).toBe(msgs.length);
    got.forEach((g, i) => expect(same(g, msgs[i])).toBe(true));
  });

  it('rejects queued sends when the channel fails', async () => {
    const ch = new FakeChannel();
    const sender = new FrameSender(ch, { highWaterMark: 0 });
    const p1 = sender.send(bytes(10, 0));
    const p2 = sender.send(bytes(10, 1));
    sender.close(new Error('peer gone'));
    await expect(p1).resolves.toBeUndefined();
    await expect(p2).rejects.toThrow('peer gone');
    await expect(sender.send(bytes(1, 0))).rejects.toThrow('peer gone');
  });
});
