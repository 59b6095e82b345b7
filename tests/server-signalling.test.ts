// The signalling server against real WebSocket clients over a real HTTP server (loopback only;
// clients bind 127.0.0.2 etc. to stand for other addresses).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createSignallingServer, type SignallingOptions, type SignallingServer } from '../src/server/signalling.ts';
import type { ServerMessage } from '../src/server/signal-protocol.ts';

interface Served {
  http: Server;
  signalling: SignallingServer;
  url: string;
  lines: string[];
}
const served: Served[] = [];

/** A signalling server with `opts` on an HTTP server at an ephemeral port of 127.0.0.1; its log lines kept. */
async function serve(opts: SignallingOptions = {}): Promise<Served> {
  const http = createServer((_req, res) => res.end('ok'));
  const lines: string[] = [];
  const signalling = createSignallingServer({ log: (l) => lines.push(l), ...opts });
  signalling.attach(http);
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const s = { http, signalling, url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}/signal`, lines };
  served.push(s);
  return s;
}

let http: Server;
let signalling: SignallingServer;
let url: string;

beforeAll(async () => {
  ({ http, signalling, url } = await serve({ iceServers: [{ urls: 'stun:example.org:3478' }], maxMessageBytes: 4096 }));
});
afterAll(async () => {
  for (const s of served) {
    await s.signalling.close();
    await new Promise((r) => s.http.close(r));
  }
});

class Client {
  readonly ws: WebSocket;
  private queue: ServerMessage[] = [];
  private waiters: ((m: ServerMessage) => void)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** `opts.localAddress` ('127.0.0.2') stands for another machine; `opts.origin` for a page. */
  constructor(path = url, opts: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(path, opts);
    this.ws.on('message', (d) => {
      const m = JSON.parse(String(d)) as ServerMessage;
      const w = this.waiters.shift();
      if (w) w(m);
      else this.queue.push(m);
    });
    this.closed = new Promise((r) => this.ws.on('close', (code, reason) => r({ code, reason: String(reason) })));
  }
  async open(): Promise<this> {
    if (this.ws.readyState !== WebSocket.OPEN) await new Promise((r, j) => (this.ws.once('open', r), this.ws.once('error', j)));
    return this;
  }
  send(v: unknown): void {
    this.ws.send(typeof v === 'string' ? v : JSON.stringify(v));
  }
  next(): Promise<ServerMessage> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no message within 3 s')), 3000);
      this.waiters.push((x) => (clearTimeout(t), resolve(x)));
    });
  }
  async join(room: string, secret?: string, meta?: Record<string, string>): Promise<ServerMessage> {
    await this.open();
    this.send({ type: 'join', version: 1, room, secret, meta });
    return this.next();
  }
}

describe('signalling server', () => {
  it('joins rooms, lists members, relays signals, announces leaves', async () => {
    const a = new Client();
    const wa = await a.join('room-1', undefined, { role: 'leader' });
    expect(wa).toMatchObject({ type: 'welcome', room: 'room-1', peers: [], iceServers: [{ urls: 'stun:example.org:3478' }], protected: false });
    const idA = wa.type === 'welcome' ? wa.id : '';
    const b = new Client();
    const wb = await b.join('room-1', undefined, { role: 'stage' });
    expect(wb).toMatchObject({ type: 'welcome', peers: [{ id: idA, meta: { role: 'leader' } }] });
    const idB = wb.type === 'welcome' ? wb.id : '';
    expect(await a.next()).toEqual({ type: 'peer-joined', peer: { id: idB, meta: { role: 'stage' } } });

    // Another room is separate.
    const c = new Client();
    expect(await c.join('room-2')).toMatchObject({ type: 'welcome', peers: [] });
    c.send({ type: 'signal', to: idA, data: { sdp: 'x' } });
    expect(await c.next()).toMatchObject({ type: 'error', code: 'unknown-peer', fatal: false });

    a.send({ type: 'signal', to: idB, data: { type: 'offer', sdp: 'v=0' } });
    expect(await b.next()).toEqual({ type: 'signal', from: idA, data: { type: 'offer', sdp: 'v=0' } });
    b.send({ type: 'signal', to: idA, data: { candidate: { candidate: 'c' } } });
    expect(await a.next()).toEqual({ type: 'signal', from: idB, data: { candidate: { candidate: 'c' } } });

    b.ws.close();
    expect(await a.next()).toEqual({ type: 'peer-left', id: idB });
    expect(signalling.rooms().find((r) => r.room === 'room-1')?.peers.map((p) => p.id)).toEqual([idA]);
    a.ws.close();
    c.ws.close();
    await a.closed;
    await c.closed;
    await new Promise((r) => setTimeout(r, 50));
    expect(signalling.rooms()).toEqual([]);
  });

  it('protects a room with the secret of its first joiner', async () => {
    const owner = new Client();
    expect(await owner.join('secret-room', 'hunter2')).toMatchObject({ type: 'welcome', protected: true });

    const none = new Client();
    const e1 = await none.join('secret-room');
    expect(e1).toMatchObject({ type: 'error', code: 'secret-required', fatal: true });
    expect(e1.type === 'error' && e1.message).toMatch(/protected by a secret/);
    expect((await none.closed).code).toBe(4003);

    const wrong = new Client();
    expect(await wrong.join('secret-room', 'hunter3')).toMatchObject({ type: 'error', code: 'wrong-secret', message: 'wrong secret for room "secret-room"' });
    expect((await wrong.closed).code).toBe(4003);

    const right = new Client();
    expect(await right.join('secret-room', 'hunter2')).toMatchObject({ type: 'welcome', protected: true });
    expect(await owner.next()).toMatchObject({ type: 'peer-joined' });
    owner.ws.close();
    right.ws.close();
  });

  it('answers malformed messages with errors and keeps serving', async () => {
    const c = await new Client().open();
    const expectError = async (payload: unknown, code: string): Promise<void> => {
      c.send(payload);
      expect(await c.next()).toMatchObject({ type: 'error', code, fatal: false });
    };
    await expectError('{not json', 'bad-json');
    await expectError('42', 'bad-message');
    await expectError({ type: 'nope' }, 'bad-message');
    await expectError({ type: 'signal', to: 'x', data: { sdp: 1 } }, 'not-joined');
    await expectError({ type: 'join', version: 1, room: '../../etc' }, 'bad-message');
    await expectError({ type: 'join', version: 1, room: 'r', secret: 5 }, 'bad-message');
    await expectError({ type: 'join', version: 1, room: 'r', meta: { a: { deep: 1 } } }, 'bad-message');
    await expectError({ type: 'signal', to: 'x', data: 'str' }, 'bad-message');
    await expectError('x'.repeat(5000), 'too-large');
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect(await c.next()).toMatchObject({ type: 'error', code: 'bad-message' });
    c.send({ type: 'ping' });
    expect(await c.next()).toEqual({ type: 'pong' });
    expect(await c.join('ok-room')).toMatchObject({ type: 'welcome' });
    await expectError({ type: 'join', version: 1, room: 'ok-room' }, 'already-joined');
    c.ws.close();

    const old = new Client();
    await old.open();
    old.send({ type: 'join', version: 0, room: 'r' });
    expect(await old.next()).toMatchObject({ type: 'error', code: 'bad-version', fatal: true });
    expect((await old.closed).code).toBe(4005);

    // Way over the hard cap: ws closes the socket (1009); the server lives on.
    const huge = await new Client().open();
    huge.send('y'.repeat(2 * 1024 * 1024));
    expect((await huge.closed).code).toBe(1009);
    expect(await new Client().join('after-junk')).toMatchObject({ type: 'welcome' });
  });

  it('ignores upgrades to other paths (left for e.g. Vite HMR)', async () => {
    let handled = false;
    http.once('upgrade', (req, socket) => {
      if (req.url === '/other') {
        handled = true;
        socket.destroy();
      }
    });
    const o = new WebSocket(url.replace('/signal', '/other'));
    await new Promise((r) => o.on('error', r));
    expect(handled).toBe(true);
  });
});

/** The status and body with which the server refuses a WebSocket upgrade. */
function refusedUpgrade(target: string, opts: WebSocket.ClientOptions = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(target, opts);
    ws.on('open', () => reject(new Error('upgrade was accepted')));
    ws.on('error', () => {});
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += String(d)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
  });
}

const closeAll = (cs: Client[]): void => cs.forEach((c) => c.ws.close());

describe('signalling server: what no client may do', () => {
  it('survives a join whose version is 30 multi-byte characters (close reason cut by UTF-8 bytes)', async () => {
    const c = await new Client().open();
    c.send({ type: 'join', version: '語'.repeat(30), room: 'r' });
    const e = await c.next();
    expect(e).toMatchObject({ type: 'error', code: 'bad-version', fatal: true });
    const closed = await c.closed;
    expect(closed.code).toBe(4005);
    expect(Buffer.byteLength(closed.reason, 'utf8')).toBeLessThanOrEqual(123);
    expect(closed.reason).toMatch(/^signalling version 語+/);
    expect(await new Client().join('after-multibyte')).toMatchObject({ type: 'welcome' });
  });

  it('caps the connections of one address with a clear refusal; other addresses still get in', async () => {
    const s = await serve({ maxConnectionsPerAddress: 4 });
    const four = await Promise.all([0, 1, 2, 3].map(() => new Client(s.url).open()));
    const fifth = new Client(s.url);
    expect(await fifth.next()).toMatchObject({ type: 'error', code: 'too-many-connections', fatal: true });
    expect((await fifth.closed).code).toBe(4029);
    expect(s.lines.some((l) => /refused 127\.0\.0\.1: too-many-connections/.test(l))).toBe(true);
    expect(await new Client(s.url, { localAddress: '127.0.0.2' }).join('other-address')).toMatchObject({ type: 'welcome' });
    four[0].ws.close();
    await four[0].closed;
    expect(await new Client(s.url).join('freed')).toMatchObject({ type: 'welcome' });
    closeAll(four);
  });

  it('throttles join attempts per address', async () => {
    const s = await serve({ joinBurst: 3, joinsPerMinute: 6 });
    const ok = await Promise.all([0, 1, 2].map(async (i) => {
      const c = new Client(s.url);
      expect(await c.join(`j${i}`)).toMatchObject({ type: 'welcome' });
      return c;
    }));
    const c = new Client(s.url);
    const e = await c.join('j4');
    expect(e).toMatchObject({ type: 'error', code: 'throttled', fatal: true });
    expect(e.type === 'error' && e.message).toMatch(/too many join attempts from 127\.0\.0\.1 .*try again in \d+ s/);
    expect((await c.closed).code).toBe(4029);
    closeAll(ok);
  });

  it('throttles secret guesses per address, even a right one, and says for how long', async () => {
    const s = await serve();
    const owner = new Client(s.url, { localAddress: '127.0.0.3' });
    expect(await owner.join('vault', 'correct horse')).toMatchObject({ type: 'welcome', protected: true });
    const answers: string[] = [];
    for (let i = 0; i < 8; i++) {
      const g = new Client(s.url);
      const m = await g.join('vault', `guess-${i}`);
      answers.push(m.type === 'error' ? m.code : m.type);
      await g.closed;
    }
    expect(answers).toEqual(['wrong-secret', 'wrong-secret', 'wrong-secret', 'wrong-secret', 'wrong-secret', 'throttled', 'throttled', 'throttled']);
    const right = new Client(s.url);
    const m = await right.join('vault', 'correct horse');
    expect(m).toMatchObject({ type: 'error', code: 'throttled' });
    expect(m.type === 'error' && m.message).toMatch(/too many wrong secrets from 127\.0\.0\.1; try again in \d+ s/);
    // Another address with the secret is not held up by the guesser.
    expect(await new Client(s.url, { localAddress: '127.0.0.2' }).join('vault', 'correct horse')).toMatchObject({ type: 'welcome' });
    owner.ws.close();
  });

  it('checks the Origin of upgrades: same host or allowed; programs without Origin get in', async () => {
    const s = await serve({ allowedOrigins: ['https://mesh.example:8443'] });
    const host = new URL(s.url).host;
    const r = await refusedUpgrade(s.url, { origin: 'https://evil.example' });
    expect(r.status).toBe(403);
    expect(r.body).toMatch(/origin "https:\/\/evil.example" may not connect/);
    expect((await refusedUpgrade(s.url, { origin: 'null' })).status).toBe(403);
    expect(s.lines.some((l) => /origin "https:\/\/evil.example" is not this server's/.test(l))).toBe(true);
    const ok = [new Client(s.url, { origin: `http://${host}` }), new Client(s.url, { origin: 'https://mesh.example:8443' }), new Client(s.url)];
    for (const [i, c] of ok.entries()) expect(await c.join(`origin-${i}`)).toMatchObject({ type: 'welcome' });
    closeAll(ok);
  });

  it('closes a socket that does not join in time', async () => {
    const s = await serve({ joinTimeoutMs: 300 });
    const c = await new Client(s.url).open();
    expect(await c.next()).toMatchObject({ type: 'error', code: 'join-timeout', fatal: true });
    expect((await c.closed).code).toBe(4008);
  });

  it('drops a reader that stopped reading once its unsent data passes the cap', async () => {
    const s = await serve({ maxBufferedBytes: 256 * 1024, rateLimit: 10_000, heartbeatMs: 60_000 });
    const slow = new Client(s.url);
    const w = await slow.join('slow');
    const slowId = w.type === 'welcome' ? w.id : '';
    const fast = new Client(s.url);
    await fast.join('slow');
    slow.ws.pause();
    const blob = { type: 'offer', sdp: 'x'.repeat(50_000) };
    let left = false;
    const seen = fast.next().then((m) => (left = m.type === 'peer-left' && m.id === slowId));
    const t0 = Date.now();
    for (let i = 0; i < 400 && !left && Date.now() - t0 < 8000; i++) {
      fast.send({ type: 'signal', to: slowId, data: blob });
      await new Promise((r) => setTimeout(r, 2));
    }
    await Promise.race([seen, new Promise((r) => setTimeout(r, 2000))]);
    expect(left).toBe(true);
    expect(s.lines.some((l) => /a reader that stopped reading/.test(l))).toBe(true);
    slow.ws.resume();
    closeAll([slow, fast]);
  });

  it("keeps the operator's reserved rooms: never crowded out, never claimed by a stranger's secret", async () => {
    const s = await serve({ maxRooms: 2, roomSecrets: { ops: 's3cret' }, reservedRooms: ['open-ops'] });
    const crowd = [new Client(s.url), new Client(s.url)];
    for (const [i, c] of crowd.entries()) expect(await c.join(`filler-${i}`)).toMatchObject({ type: 'welcome' });
    expect(await new Client(s.url).join('one-too-many')).toMatchObject({ type: 'error', code: 'server-full' });
    const stranger = new Client(s.url, { localAddress: '127.0.0.2' });
    expect(await stranger.join('ops', 'guess')).toMatchObject({ type: 'error', code: 'wrong-secret' });
    const op = new Client(s.url);
    expect(await op.join('ops', 's3cret')).toMatchObject({ type: 'welcome', protected: true });
    const squatter = new Client(s.url, { localAddress: '127.0.0.2' });
    expect(await squatter.join('open-ops', 'mine-now')).toMatchObject({ type: 'welcome', protected: false });
    expect(await new Client(s.url).join('open-ops')).toMatchObject({ type: 'welcome', protected: false });
    closeAll([...crowd, op, squatter]);
  });
});
