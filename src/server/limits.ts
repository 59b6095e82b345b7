// Small building blocks for the server's limits: token buckets, per-address state that forgets
// idle addresses, a log that a flood cannot fill, and WebSocket close reasons cut to the protocol's
// 123 bytes of UTF-8. No Node imports beyond what every server file has.

/** A token bucket: `burst` tokens, refilled at `perMinute` per minute. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly burst: number,
    readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 60_000) * this.perMinute);
    this.last = t;
  }

  /** Takes one token; false (and nothing taken) when the bucket is empty. */
  take(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Whether one token is there now (takes nothing). */
  available(): boolean {
    this.refill();
    return this.tokens >= 1;
  }

  /** Milliseconds until one token is there (0 when it is). */
  waitMs(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.perMinute) * 60_000);
  }

  full(): boolean {
    this.refill();
    return this.tokens >= this.burst;
  }
}

/**
 * The key that limits count by: the IPv4 address (also when written as ::ffff:a.b.c.d), or the /64
 * prefix of an IPv6 address (one host usually holds a whole /64).
 */
export function addressKey(remote: string | undefined): string {
  if (!remote) return '?';
  const v4 = /^(?:::ffff:)?(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(remote);
  if (v4) return v4[1];
  if (!remote.includes(':')) return remote;
  const [head, tail = ''] = remote.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = remote.includes('::') ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/**
 * State per address key, created on first use and dropped by `sweep()` once `idle(state)` says it
 * holds nothing (no open connection, full buckets), so an address that goes away costs nothing.
 */
export class PerAddress<T> {
  private readonly map = new Map<string, T>();

  constructor(
    private readonly create: (key: string) => T,
    private readonly idle: (state: T) => boolean,
  ) {}

  get(key: string): T {
    let s = this.map.get(key);
    if (!s) {
      s = this.create(key);
      this.map.set(key, s);
    }
    return s;
  }

  sweep(): void {
    for (const [k, s] of this.map) if (this.idle(s)) this.map.delete(k);
  }

  /** Drops the state of `key` if it is idle. */
  release(key: string): void {
    const s = this.map.get(key);
    if (s && this.idle(s)) this.map.delete(key);
  }

  get size(): number {
    return this.map.size;
  }
}

/**
 * A log with at most `maxLines` lines per address per `windowMs`; what it holds back is counted and
 * said in one line when the window ends (on the next line from that address or on `flush()`).
 */
export class LimitedLog {
  private readonly windows = new Map<string, { start: number; lines: number; held: number }>();

  constructor(
    private readonly write: (line: string) => void,
    private readonly maxLines = 30,
    private readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  line(key: string, text: string): void {
    const t = this.now();
    let w = this.windows.get(key);
    if (w && t - w.start >= this.windowMs) {
      this.report(key, w);
      w = undefined;
    }
    if (!w) {
      w = { start: t, lines: 0, held: 0 };
      this.windows.set(key, w);
    }
    if (w.lines < this.maxLines) {
      w.lines++;
      this.write(text);
    } else {
      w.held++;
    }
  }

  /** Ends the windows that are over (call now and then). */
  flush(): void {
    const t = this.now();
    for (const [k, w] of this.windows) {
      if (t - w.start >= this.windowMs) {
        this.report(k, w);
        this.windows.delete(k);
      }
    }
  }

  private report(key: string, w: { held: number }): void {
    if (w.held > 0) this.write(`[server] ${w.held} more log lines about ${key} held back (over ${this.maxLines} in ${this.windowMs / 1000} s)`);
  }
}

/** The longest a WebSocket close reason may be, in bytes of UTF-8 (RFC 6455: 125 minus the code). */
export const MAX_CLOSE_REASON_BYTES = 123;

/** `s` cut to at most `maxBytes` bytes of UTF-8, never inside a character (an ellipsis marks a cut). */
export function truncateUtf8(s: string, maxBytes: number = MAX_CLOSE_REASON_BYTES): string {
  if (Buffer.byteLength(s, 'utf8') <= maxBytes) return s;
  const room = maxBytes - 3; // '…' is 3 bytes
  let bytes = 0;
  let out = '';
  for (const ch of s) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (bytes + n > room) break;
    bytes += n;
    out += ch;
  }
  return room >= 0 ? out + '…' : '';
}
