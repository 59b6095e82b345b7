// The signalling server against real WebSocket clients over a real HTTP server.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createSignallingServer, type SignallingServer } from '../src/server/signalling.ts';
import type { ServerMessage } from '../src/server/signal-protocol.ts';

let http: Server;
let signalling: SignallingServer;
let url: string;

beforeAll(async () => {
  http = createServer((_req, res) => res.end('ok'));
  signalling = createSignallingServer({ iceServers: [{ urls: 'stun:example.org:3478' }], maxMessageBytes: 4096 });
  signalling.attach(http);
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/signal`;
});
afterAll(async () => {
  await signalling.close();
  await new Promise((r) => http.close(r));
});

class Client {
  readonly ws: WebSocket;
  private queue: ServerMessage[] = [];
  private waiters: ((m: ServerMessage) => void)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  constructor(path = url) {
    this.ws = new WebSocket(path);
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
