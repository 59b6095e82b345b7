// The production host (`npm start` minus the build), spawned as a child process: HTTPS with a
// generated certificate, static files with ranges, the signalling service on the same port over
// wss, and what no client may do to it (loopback only; every flood bounded in count and time).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

const dist = mkdtempSync(join(tmpdir(), 'mesh-dist-'));
writeFileSync(join(dist, 'index.html'), '<!doctype html><title>mesh</title>');
writeFileSync(join(dist, 'weights.bin'), '0123456789');
writeFileSync(join(dist, 'big.bin'), '');
truncateSync(join(dist, 'big.bin'), 64 * 1024 * 1024); // sparse: 64 MiB that cost no disk

interface Host {
  child: ChildProcess;
  port: number;
  /** http or https */
  scheme: string;
  output: () => string;
}
const hosts: Host[] = [];

/** Runs src/server/main.ts with `args` (and at most `files` open files); resolves once it prints its links, or with how it exited. */
function startHost(args: string[], opts: { files?: number; scheme?: string } = {}): Promise<Host & { code: number | null }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const argv = ['--port', String(port), '--host', '127.0.0.1', '--dist', dist, ...args].map((a) => `'${a}'`).join(' ');
  const child = spawn('bash', ['-c', `ulimit -n ${opts.files ?? 1024} && exec '${process.execPath}' --import tsx src/server/main.ts ${argv}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d) => (out += String(d)));
  child.stderr?.on('data', (d) => (out += String(d)));
  const host = { child, port, scheme: opts.scheme ?? 'https', output: () => out };
  hosts.push(host);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server neither started nor exited in 25 s:\n${out}`)), 25_000);
    const poll = setInterval(() => {
      if (!out.includes('Join link') && child.exitCode === null) return;
      clearInterval(poll);
      clearTimeout(timer);
      resolve({ ...host, code: child.exitCode });
    }, 50);
  });
}

interface Got {
  status: number;
  body: string;
  headers: Record<string, unknown>;
}

/** One request to a host; `opts.abort` cuts it as soon as the response starts (an aborted download). */
function get(h: Host, path: string, headers: Record<string, string> = {}, opts: { abort?: boolean } = {}): Promise<Got> {
  const o: RequestOptions & { rejectUnauthorized: boolean } = { host: '127.0.0.1', port: h.port, path, headers, rejectUnauthorized: false, agent: false };
  return new Promise((resolve, reject) => {
    const done = (res: IncomingMessage, body: string): void => resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
    const onResponse = (res: IncomingMessage): void => {
      if (opts.abort) return (req.destroy(), done(res, ''));
      let body = '';
      res.on('data', (d) => (body += String(d)));
      res.on('end', () => done(res, body));
    };
    const req: ClientRequest = h.scheme === 'https' ? httpsRequest(o, onResponse) : httpRequest(o, onResponse);
    req.on('error', reject);
    req.end();
  });
}

/** Open descriptors of a host's process (Linux /proc). */
const openFiles = (h: Host): number => readdirSync(`/proc/${h.child.pid}/fd`).length;

type Msg = { type: string; code?: string; id?: string; from?: string; data?: unknown; peers?: unknown[] };

/** A WebSocket to a host's /signal (or `path`): what it received, whether it opened, how it closed. */
function peer(h: Host, opts: WebSocket.ClientOptions & { path?: string } = {}) {
  const ws = new WebSocket(`${h.scheme === 'https' ? 'wss' : 'ws'}://127.0.0.1:${h.port}${opts.path ?? '/signal'}`, { rejectUnauthorized: false, ...opts });
  const got: Msg[] = [];
  ws.on('message', (d) => got.push(JSON.parse(String(d)) as Msg));
  ws.on('error', () => {});
  const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
  const opened = new Promise<boolean>((r) => (ws.on('open', () => r(true)), ws.on('close', () => r(false))));
  /** The first message of `type` (waits up to 5 s). */
  const next = async (type: string): Promise<Msg> => {
    for (let t0 = Date.now(); Date.now() - t0 < 5000; await sleep(20)) {
      const m = got.find((x) => x.type === type);
      if (m) return m;
    }
    throw new Error(`no ${type} within 5 s (got ${JSON.stringify(got).slice(0, 300)})`);
  };
  const send = (v: unknown): void => ws.send(JSON.stringify(v));
  return { ws, got, closed, opened, next, send };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let main: Host;
let output = '';
let port = 0;

beforeAll(async () => {
  main = await startHost(['--room', 'lan', '--secret', 's3']);
  output = main.output();
  port = main.port;
  if (main.child.exitCode !== null) throw new Error(`server did not start:\n${output}`);
}, 30_000);
afterAll(() => {
  for (const h of hosts) h.child.kill('SIGTERM');
});

describe('npm start server', () => {
  it('prints URLs and a join link with the room and secret', () => {
    expect(output).toContain(`https://127.0.0.1:${port}/`);
    expect(output).toMatch(/Join link for stage tabs: https:\/\/[\d.]+:\d+\/\?room=lan&stage#secret=s3/);
    expect(output).toMatch(/Leader \(the chat page; open it first\): https:\/\/[\d.]+:\d+\/\?room=lan#secret=s3/);
  });

  it('serves dist/ over HTTPS with ranges and refuses traversal', async () => {
    expect(await get(main, '/')).toMatchObject({ status: 200, body: '<!doctype html><title>mesh</title>' });
    expect(await get(main, '/weights.bin', { Range: 'bytes=2-5' })).toMatchObject({ status: 206, body: '2345' });
    expect(await get(main, '/weights.bin', { Range: 'bytes=-3' })).toMatchObject({ status: 206, body: '789' });
    expect((await get(main, '/weights.bin', { Range: 'bytes=20-' })).status).toBe(416);
    expect((await get(main, '/nope.js')).status).toBe(404);
    expect((await get(main, '/%2e%2e/%2e%2e/etc/passwd')).status).toBe(404); // URL parsing resolves the dots inside dist/
    expect((await get(main, '/..%2F..%2F..%2Fetc%2Fpasswd')).status).toBe(403);
  });

  it('hosts signalling over wss with the room secret fixed by the operator', async () => {
    const join = (secret?: string): Promise<{ type: string; code?: string }> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`wss://127.0.0.1:${port}/signal`, { rejectUnauthorized: false });
        ws.on('open', () => ws.send(JSON.stringify({ type: 'join', version: 1, room: 'lan', secret })));
        ws.on('message', (d) => {
          resolve(JSON.parse(String(d)) as { type: string });
          ws.close();
        });
        ws.on('error', reject);
      });
    expect(await join()).toMatchObject({ type: 'error', code: 'secret-required' });
    expect(await join('nope')).toMatchObject({ type: 'error', code: 'wrong-secret' });
    expect(await join('s3')).toMatchObject({ type: 'welcome' });
  });

  it('sends security headers on every response (HSTS because it is https)', async () => {
    for (const path of ['/', '/nope.js']) {
      const { headers } = await get(main, path);
      expect(headers['x-content-type-options']).toBe('nosniff');
      expect(headers['strict-transport-security']).toMatch(/^max-age=\d+/);
      expect(headers['referrer-policy']).toBe('no-referrer');
      expect(headers['x-frame-options']).toBe('DENY');
      const csp = String(headers['content-security-policy']);
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain(`connect-src 'self' wss://127.0.0.1:${port} https:`);
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toMatch(/unsafe-(inline|eval)/);
    }
  });

  it('answers a WebSocket upgrade to another path with 404 and closes it', async () => {
    const p = peer(main, { path: '/hmr' });
    const res = await Promise.race([
      new Promise<IncomingMessage>((r) => p.ws.on('unexpected-response', (_req, res) => r(res))),
      sleep(3000).then(() => null),
    ]);
    expect(res?.statusCode).toBe(404);
    let body = '';
    res?.on('data', (d: Buffer) => (body += String(d)));
    await new Promise((r) => res?.on('end', r));
    expect(body).toMatch(/no WebSocket service at "\/hmr"; the signalling service is at \/signal/);
    expect(await Promise.race([new Promise((r) => res?.socket.on('close', () => r('closed'))), sleep(3000).then(() => 'open')])).toBe('closed');
    expect(main.output()).toMatch(/refused 127\.0\.0\.1: WebSocket upgrade to "\/hmr" \(404\)/);
  });

  it('refuses to start with an empty secret (or a misspelt option) and says why', async () => {
    const runs = await Promise.all([['--secret='], ['--room', 'x', '--secret'], ['--secret', ' '], ['--secert', 's3']].map((a) => startHost(a)));
    for (const r of runs.slice(0, 3)) {
      expect(r.code, r.output()).toBe(1);
      expect(r.output()).toContain('--secret needs a value');
    }
    expect(runs[3].code).toBe(1);
    expect(runs[3].output()).toContain('unknown option --secert');
  });
});

describe('npm start server under a low file limit (ulimit -n 128, plain http)', () => {
  let low: Host;
  beforeAll(async () => {
    low = await startHost(['--http', '--room', 'lan', '--secret', 's3'], { files: 128, scheme: 'http' });
    if (low.child.exitCode !== null) throw new Error(`server did not start:\n${low.output()}`);
  }, 30_000);

  /** Waits (up to 5 s) until the host holds at most `n` descriptors; returns how many it holds. */
  const settle = async (n: number): Promise<number> => {
    for (let t0 = Date.now(); openFiles(low) > n && Date.now() - t0 < 5000; ) await sleep(50);
    return openFiles(low);
  };

  it('closes the file of every aborted download: 300 aborted, no descriptor left over, still serving', async () => {
    const before = openFiles(low);
    for (let i = 0; i < 300; i += 10) {
      const batch = await Promise.all(Array.from({ length: 10 }, () => get(low, '/big.bin', {}, { abort: true }))).catch((e: Error) => {
        throw new Error(`download ${i}: ${e.message}; the server (exit code ${low.child.exitCode}) said:\n${low.output().slice(-1500)}`);
      });
      expect(batch.every((g) => g.status === 200)).toBe(true);
    }
    expect(await settle(before + 4)).toBeLessThanOrEqual(before + 4);
    expect(low.child.exitCode).toBe(null);
    expect(await get(low, '/')).toMatchObject({ status: 200 });
  }, 30_000);

  it('headers over plain http: no HSTS, ws: in the CSP', async () => {
    const { headers } = await get(low, '/');
    expect(headers['strict-transport-security']).toBeUndefined();
    expect(String(headers['content-security-policy'])).toContain(`connect-src 'self' ws://127.0.0.1:${low.port} https: http:`);
  });

  it('a bounded flood leaves it up: two legitimate peers then join the room and exchange a signal', async () => {
    const before = openFiles(low);
    // 4 addresses x 30 sockets: more than the 128 descriptors the process may hold (EMFILE on accept).
    const crowd = Array.from({ length: 120 }, (_, i) => peer(low, { localAddress: `127.0.0.${10 + (i % 4)}` }));
    await Promise.race([Promise.all(crowd.map((x) => x.opened)), sleep(4000)]);
    await get(low, '/weights.bin').catch(() => null); // served, refused or cut: anything but a crash
    expect(low.child.exitCode).toBe(null);
    for (const x of crowd) x.ws.terminate();
    expect(await settle(before + 4)).toBeLessThanOrEqual(before + 4);
    // 60 sockets at once from one address (cap 32): the rest refused with a clear message.
    const socks = Array.from({ length: 60 }, () => peer(low));
    await Promise.all(socks.map((x) => x.opened));
    await sleep(300);
    expect(socks.filter((x) => x.got.some((m) => m.code === 'too-many-connections')).length).toBeGreaterThanOrEqual(20);
    const live = socks.filter((x) => x.ws.readyState === WebSocket.OPEN && x.got.length === 0);
    expect(live.length).toBeLessThanOrEqual(32);
    // On the ones it took: floods, oversized and malformed messages, secret guesses.
    live.forEach((x, i) => {
      if (i % 6 === 0) for (let k = 0; k < 700; k++) x.ws.send('{"type":"ping"}');
      if (i % 6 === 1) x.ws.send('x'.repeat(200_000));
      if (i % 6 === 2) x.ws.send('y'.repeat(2 * 1024 * 1024));
      if (i % 6 === 3) x.send({ type: 'join', version: '語'.repeat(30), room: 'lan' });
      if (i % 6 === 4) (x.ws.send(Buffer.alloc(1000), { binary: true }), x.ws.send('{bad json'), x.send({ type: 'join', version: 1, room: 'lan', meta: { a: { b: 1 } } }));
      if (i % 6 === 5) x.send({ type: 'join', version: 1, room: 'lan', secret: `guess-${i}` });
    });
    // Meanwhile 100 aborted downloads, 10 at a time, and upgrades to other paths.
    for (let i = 0; i < 100; i += 10) {
      await Promise.all(Array.from({ length: 10 }, () => get(low, '/big.bin', { Range: 'bytes=0-' }, { abort: true }).catch(() => null)));
      peer(low, { path: '/x' });
    }
    await sleep(500);
    for (const x of socks) x.ws.terminate();
    // Every refusal was a clear message to its client (the server's log of them is capped per address).
    const codes = new Set(live.flatMap((x) => x.got.map((m) => m.code)));
    for (const code of ['rate-limited', 'too-large', 'bad-version', 'bad-json', 'bad-message', 'wrong-secret']) expect(codes).toContain(code);
    expect(low.output()).toMatch(/refused 127\.0\.0\.1: too-many-connections: /);

    expect(low.child.exitCode).toBe(null);
    expect(await get(low, '/')).toMatchObject({ status: 200 });
    const a = peer(low, { localAddress: '127.0.0.2' });
    await a.opened;
    a.send({ type: 'join', version: 1, room: 'lan', secret: 's3', meta: { role: 'leader' } });
    const wa = await a.next('welcome');
    const b = peer(low, { localAddress: '127.0.0.3' });
    await b.opened;
    b.send({ type: 'join', version: 1, room: 'lan', secret: 's3', meta: { role: 'stage' } });
    expect(await b.next('welcome')).toMatchObject({ peers: [{ id: wa.id, meta: { role: 'leader' } }] });
    b.send({ type: 'signal', to: wa.id, data: { type: 'offer', sdp: 'v=0' } });
    expect(await a.next('signal')).toMatchObject({ data: { type: 'offer', sdp: 'v=0' } });
    a.ws.close();
    b.ws.close();
    expect(await settle(before + 4)).toBeLessThanOrEqual(before + 4);
  }, 30_000);
});
