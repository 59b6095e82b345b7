// `npm start`: serves the built app (dist/) over HTTPS plus the signalling service at /signal, so
// tabs on other laptops of the LAN can join (WebGPU needs a secure context; http://192.168.x.y is
// not one). Uses --cert/--key when given, else a self-signed certificate generated on first start
// and cached (browsers ask once to accept it).
//
//   npm start -- [--port 8443] [--host 0.0.0.0] [--cert cert.pem --key key.pem] [--http]
//                [--room NAME] [--secret S] [--ice '[{"urls":"stun:stun.example.org"}]'] [--stun URL,URL]
//                [--turn URL --turn-user U --turn-pass P] [--dist dist] [--allow-origin URL,URL]
//                [--<limit> N for each of SIGNALLING_LIMITS, HTTP_LIMITS and API_LIMITS, e.g. --max-connections-per-address 32]
//                [--api-key KEY] [--leader headless [--placement tab|mesh] [--stages N] [--model PATH] [--draft-model PATH|none]]
//
// The OpenAI-compatible API (/v1/..., api-server.ts) is relayed to the room's API leader; --leader
// headless starts one (headless-leader.ts).
//
// Hardened against clients (README, "Security"): every stream and socket error is handled, a file
// stream ends when its client goes away, every response carries security headers, upgrades to
// other paths are answered 404, and sockets per address, header and idle times are limited.

import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { extname, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream';
import { randomBytes, X509Certificate } from 'node:crypto';
import { parseArgs, rejectUnknown, str, num, type Args } from '../common/args.ts';
import { createSignallingServer, SIGNALLING_LIMITS, type SignallingLimits } from './signalling.ts';
import { ROOM_PATTERN, SIGNAL_PATH, type IceServerConfig } from './signal-protocol.ts';
import { securityHeaders } from './http-security.ts';
import { addressKey, LimitedLog, PerAddress } from './limits.ts';
import { API_LIMITS, createApiServer, type ApiLimits } from './api-server.ts';
import { spawnHeadlessLeader } from './headless-leader.ts';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.wgsl': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json',
};

export function lanAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) out.push(a.address);
  }
  return out;
}

/** ICE servers from --ice (JSON), --stun (comma list) and --turn/--turn-user/--turn-pass. */
export function iceServersFromArgs(args: Args): IceServerConfig[] {
  const out: IceServerConfig[] = [];
  const ice = args.get('ice');
  if (typeof ice === 'string') {
    const v: unknown = JSON.parse(ice);
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'object' && s !== null && 'urls' in s)) {
      throw new Error('--ice must be a JSON array of {"urls": ..., "username"?, "credential"?}');
    }
    out.push(...(v as IceServerConfig[]));
  }
  const stun = args.get('stun');
  if (typeof stun === 'string') out.push({ urls: stun.split(',').map((s) => s.trim()).filter(Boolean) });
  const turn = args.get('turn');
  if (typeof turn === 'string') {
    out.push({ urls: turn.split(','), username: str(args, 'turn-user', ''), credential: str(args, 'turn-pass', '') });
  }
  return out;
}

/** A cached self-signed certificate for localhost + the current LAN addresses (regenerated when those change or it nears expiry). */
async function selfSignedCertificate(ips: string[]): Promise<{ cert: string; key: string; fresh: boolean }> {
  const dir = resolve('node_modules/.cache/specpipe-mesh');
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  const want = ['127.0.0.1', ...ips].sort().join(',');
  if (existsSync(certPath) && existsSync(keyPath)) {
    try {
      const cert = readFileSync(certPath, 'utf8');
      const x = new X509Certificate(cert);
      const has = (x.subjectAltName ?? '')
        .split(', ')
        .filter((s) => s.startsWith('IP Address:'))
        .map((s) => s.slice('IP Address:'.length))
        .sort()
        .join(',');
      if (has === want && new Date(x.validTo).getTime() > Date.now() + 7 * 86400_000) {
        return { cert, key: readFileSync(keyPath, 'utf8'), fresh: false };
      }
    } catch {
      // unreadable cache: regenerate
    }
  }
  const selfsigned = await import('selfsigned');
  const notAfter = new Date();
  notAfter.setFullYear(notAfter.getFullYear() + 1);
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'specpipe-mesh' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notAfterDate: notAfter,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [{ type: 2, value: 'localhost' }, ...want.split(',').map((ip) => ({ type: 7 as const, ip }))],
      },
    ],
  });
  mkdirSync(dir, { recursive: true });
  writeFileSync(certPath, pems.cert);
  writeFileSync(keyPath, pems.private, { mode: 0o600 });
  return { cert: pems.cert, key: pems.private, fresh: true };
}

/** Limits of the HTTP side of `npm start` (the WebSocket side: SIGNALLING_LIMITS). */
export interface HttpLimits {
  /** Open TCP connections from one address (page loads, downloads and WebSockets together); more are cut. */
  maxSocketsPerAddress: number;
  /** Time a client has to send a request's headers. */
  headersTimeoutMs: number;
  /** Time a client has to send a whole request. */
  requestTimeoutMs: number;
  /** An HTTP connection with no traffic this long is closed (not WebSockets: their heartbeat watches them). */
  idleTimeoutMs: number;
}

export const HTTP_LIMITS: Readonly<HttpLimits> = {
  maxSocketsPerAddress: 128,
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 120_000,
};

/** `maxSocketsPerAddress` -> `max-sockets-per-address`: the command-line name of a limit. */
export const limitFlag = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** `defaults`, with every `--<limit> N` of `args` in place of its default (a positive number). */
export function limitsFromArgs<T extends object>(args: Args, defaults: T): T {
  const out = { ...defaults };
  for (const k of Object.keys(defaults) as (keyof T & string)[]) {
    const v = num(args, limitFlag(k), defaults[k] as number);
    if (!(v > 0)) throw new Error(`--${limitFlag(k)} must be a positive number`);
    (out as Record<string, number>)[k] = v;
  }
  return out;
}

export interface StaticOptions {
  /** Whether the page is served over https (HSTS, wss: in the CSP). Default true. */
  https?: boolean;
  /** One line per refused request (keyed by the client's address). */
  log?: (key: string, line: string) => void;
}

/** Static files from `root` with single-range support (model weights are read by range). */
export function staticHandler(root: string, opts: StaticOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  const base = resolve(root);
  const https = opts.https ?? true;
  const refuse = (req: IncomingMessage, res: ServerResponse, status: number, body: string, headers: Record<string, string | number> = {}): void => {
    const key = addressKey(req.socket.remoteAddress);
    if (status !== 404) opts.log?.(key, `[http] refused ${key}: ${status} ${req.method ?? '?'} ${JSON.stringify(String(req.url).slice(0, 100))}: ${body}`);
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers }).end(body);
  };
  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    for (const [k, v] of Object.entries(securityHeaders(https, req.headers.host))) res.setHeader(k, v);
    if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(req, res, 405, 'only GET and HEAD', { Allow: 'GET, HEAD' });
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      return refuse(req, res, 400, 'bad url');
    }
    if (pathname.includes('\0')) return refuse(req, res, 400, 'bad url');
    let file = resolve(base, '.' + pathname);
    if (file !== base && !file.startsWith(base + sep)) return refuse(req, res, 403, 'forbidden');
    let st = statSync(file, { throwIfNoEntry: false });
    if (st?.isDirectory()) {
      file = join(file, 'index.html');
      st = statSync(file, { throwIfNoEntry: false });
    }
    if (!st?.isFile()) return refuse(req, res, 404, `not found: ${pathname}`);
    const size = st.size;
    const headers: Record<string, string | number> = {
      'Content-Type': MIME[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'Accept-Ranges': 'bytes',
      'Cache-Control': 'no-cache',
    };
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = size - 1;
    let status = 200;
    if (range && (range[1] || range[2])) {
      if (range[1]) {
        start = Number(range[1]);
        if (range[2]) end = Math.min(Number(range[2]), size - 1);
      } else {
        start = Math.max(0, size - Number(range[2]));
      }
      if (start > end || start >= size) return refuse(req, res, 416, 'range not satisfiable', { 'Content-Range': `bytes */${size}` });
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['Content-Length'] = size === 0 ? 0 : end - start + 1;
    if (req.method === 'HEAD' || size === 0) {
      res.writeHead(status, headers).end();
      return;
    }
    // The file stream is destroyed (its descriptor closed) when the client goes away, whatever
    // state it is in; pipe() would leave it open. A file that cannot be opened (EMFILE) is a 503.
    const stream = createReadStream(file, { start, end });
    res.once('close', () => stream.destroy());
    stream.once('error', (e: NodeJS.ErrnoException) => {
      if (res.headersSent) return;
      const key = addressKey(req.socket.remoteAddress);
      opts.log?.(key, `[http] could not open ${JSON.stringify(pathname.slice(0, 100))} for ${key}: ${e.code ?? e.message} (503)`);
      res.writeHead(503, { 'Content-Type': 'text/plain; charset=utf-8', 'Retry-After': '5' }).end(`server busy (${e.code ?? 'error'}); try again`);
    });
    stream.once('open', () => {
      if (res.destroyed) return void stream.destroy();
      res.writeHead(status, headers);
      pipeline(stream, res, (e) => {
        if (e && e.code !== 'ERR_STREAM_PREMATURE_CLOSE') {
          const key = addressKey(req.socket.remoteAddress);
          opts.log?.(key, `[http] could not send ${JSON.stringify(pathname.slice(0, 100))} to ${key}: ${e.message}`);
        }
      });
    });
  };
  return (req, res) => {
    try {
      serve(req, res);
    } catch (e) {
      // e.g. stat failing on a file that vanished, EMFILE: answer if we still can, never throw.
      const key = addressKey(req.socket.remoteAddress);
      opts.log?.(key, `[http] error serving ${key}: ${e instanceof Error ? e.message : String(e)}`);
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('server error');
      else res.destroy();
    }
  };
}

/** The server-wide guards: an 'error' listener (EMFILE on accept), time limits, sockets per address. */
export function guardServer(server: Server, limits: HttpLimits, log: (key: string, line: string) => void): void {
  server.on('error', (e) => log('server', `[http] server error: ${e.message}`));
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.timeout = limits.idleTimeoutMs;
  const perAddress = new PerAddress<{ n: number }>(
    () => ({ n: 0 }),
    (a) => a.n === 0,
  );
  server.on('connection', (socket: Socket) => {
    const key = addressKey(socket.remoteAddress);
    const a = perAddress.get(key);
    if (a.n >= limits.maxSocketsPerAddress) {
      log(key, `[http] refused ${key}: ${a.n} connections open (limit ${limits.maxSocketsPerAddress}); connection cut`);
      socket.destroy();
      return;
    }
    a.n++;
    socket.once('close', () => {
      a.n--;
      perAddress.release(key);
    });
  });
}

/** The options of `npm start` besides the limits. */
const OPTIONS = ['port', 'host', 'dist', 'http', 'cert', 'key', 'room', 'secret', 'ice', 'stun', 'turn', 'turn-user', 'turn-pass', 'allow-origin', 'api-key', 'leader'];
/** The headless leader's options, passed on to it. */
const LEADER_OPTIONS = ['placement', 'stages', 'model', 'draft-model'];

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const signalLimits = limitsFromArgs<SignallingLimits>(args, SIGNALLING_LIMITS);
  const httpLimits = limitsFromArgs<HttpLimits>(args, HTTP_LIMITS);
  const apiLimits = limitsFromArgs<ApiLimits>(args, API_LIMITS);
  rejectUnknown(args, [...OPTIONS, ...LEADER_OPTIONS, ...[...Object.keys(SIGNALLING_LIMITS), ...Object.keys(HTTP_LIMITS), ...Object.keys(API_LIMITS)].map(limitFlag)]);
  const leader = args.get('leader');
  if (leader !== undefined && leader !== 'headless') throw new Error('--leader takes one value: headless (a headless Chromium leader serving the API)');
  const leaderArgs = LEADER_OPTIONS.flatMap((o) => (args.has(o) ? [`--${o}`, str(args, o)] : []));
  if (leaderArgs.length && leader === undefined) throw new Error(`${LEADER_OPTIONS.map((o) => '--' + o).join(', ')} go with --leader headless`);
  const apiKey = args.get('api-key');
  if (apiKey !== undefined && (apiKey === true || apiKey.trim() === '')) throw new Error('--api-key needs a value (--api-key KEY); leave it out for an API open to anyone who reaches this server');
  const port = num(args, 'port', 8443);
  const host = str(args, 'host', '0.0.0.0');
  const dist = str(args, 'dist', 'dist');
  const plain = args.get('http') === true;
  const room = str(args, 'room', `mesh-${randomBytes(3).toString('hex')}`);
  if (!ROOM_PATTERN.test(room)) throw new Error('--room must be 1-64 characters of A-Z a-z 0-9 . _ -');
  const secret = args.get('secret');
  if (secret !== undefined && (secret === true || secret.trim() === '')) {
    throw new Error('--secret needs a value (--secret S): an empty secret would leave the room open to anyone; leave --secret out for an open room');
  }
  const allowedOrigins = args.has('allow-origin') ? str(args, 'allow-origin').split(',').map((o) => o.trim()).filter(Boolean) : [];
  const iceServers = iceServersFromArgs(args);
  if (!existsSync(join(dist, 'index.html')) && !existsSync(dist)) {
    throw new Error(`${dist}/ does not exist: run \`npm run build\` first (\`npm start\` does)`);
  }

  const ips = lanAddresses();
  const logs = new LimitedLog((l) => console.log(l));
  const log = (key: string, line: string): void => logs.line(key, line);
  const api = createApiServer({ ...apiLimits, room, apiKey, log });
  // With its own headless leader, the server lets no one else take the API leader's role.
  const apiToken = leader === 'headless' ? randomBytes(24).toString('base64url') : undefined;
  const files = staticHandler(dist, { https: !plain, log });
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    if (!api.handle(req, res)) files(req, res);
  };
  let server: Server;
  if (plain) {
    server = createHttpServer(handler);
  } else {
    const certFile = args.get('cert');
    const keyFile = args.get('key');
    let cert: string;
    let key: string;
    if (typeof certFile === 'string' || typeof keyFile === 'string') {
      if (typeof certFile !== 'string' || typeof keyFile !== 'string') throw new Error('--cert and --key go together');
      cert = readFileSync(certFile, 'utf8');
      key = readFileSync(keyFile, 'utf8');
    } else {
      const s = await selfSignedCertificate(ips);
      cert = s.cert;
      key = s.key;
      console.log(`Self-signed certificate ${s.fresh ? 'generated' : 'reused'} (node_modules/.cache/specpipe-mesh): each browser asks once to accept it.`);
    }
    server = createHttpsServer({ cert, key }, handler);
  }
  const signalling = createSignallingServer({
    ...signalLimits,
    iceServers,
    roomSecrets: typeof secret === 'string' ? { [room]: secret } : undefined,
    reservedRooms: [room],
    allowedOrigins,
    log: (l) => console.log(l),
    api: api.hooks,
    apiToken,
  });
  api.bind(signalling);
  signalling.attach(server, SIGNAL_PATH, { otherPaths: 'refuse' });
  guardServer(server, httpLimits, log);
  await new Promise<void>((r, j) => {
    server.once('error', j);
    server.listen(port, host, () => {
      server.off('error', j);
      r();
    });
  });
  const flush = setInterval(() => logs.flush(), 30_000);
  flush.unref();

  const scheme = plain ? 'http' : 'https';
  const hosts = host === '0.0.0.0' ? ['127.0.0.1', ...ips] : [host];
  console.log(`SpecPipe mesh: serving ${resolve(dist)} and signalling at ${SIGNAL_PATH}`);
  for (const h of hosts) console.log(`  ${scheme}://${h}:${port}/`);
  if (plain && ips.length) console.log('  (plain HTTP: WebGPU works only on the 127.0.0.1 URL; put TLS in front for the LAN)');
  const joinHost = ips[0] ?? '127.0.0.1';
  const fragment = typeof secret === 'string' ? `#secret=${encodeURIComponent(secret)}` : '';
  console.log(`Leader (the chat page; open it first): ${scheme}://${joinHost}:${port}/?room=${room}${fragment}`);
  console.log(`Join link for stage tabs: ${scheme}://${joinHost}:${port}/?room=${room}&stage${fragment}`);
  console.log(`ICE servers: ${iceServers.length ? JSON.stringify(iceServers) : 'none (LAN host candidates only)'}`);
  if (typeof secret !== 'string') console.log(`Room ${room} is open: anyone who can reach this server can join it (--secret S guards it).`);
  console.log(`OpenAI-compatible API: ${scheme}://${hosts[0]}:${port}/v1 (${apiKey ? 'key required' : 'no key: --api-key KEY guards it'}), served by the room's leader`);
  const headless =
    apiToken !== undefined
      ? spawnHeadlessLeader({ link: `${scheme}://${hosts[0]}:${port}/?room=${room}`, secret: typeof secret === 'string' ? secret : undefined, apiToken, args: leaderArgs, log: (l) => console.log(l) })
      : null;

  const stop = (): void => {
    headless?.kill('SIGTERM');
    void signalling.close();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
