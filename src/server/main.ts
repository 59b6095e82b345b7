// `npm start`: serves the built app (dist/) over HTTPS plus the signalling service at /signal, so
// tabs on other laptops of the LAN can join (WebGPU needs a secure context; http://192.168.x.y is
// not one). Uses --cert/--key when given, else a self-signed certificate generated on first start
// and cached (browsers ask once to accept it).
//
//   npm start -- [--port 8443] [--host 0.0.0.0] [--cert cert.pem --key key.pem] [--http]
//                [--room NAME] [--secret S] [--ice '[{"urls":"stun:stun.example.org"}]'] [--stun URL,URL]
//                [--turn URL --turn-user U --turn-pass P] [--dist dist]

import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { networkInterfaces } from 'node:os';
import { extname, join, resolve, sep } from 'node:path';
import { randomBytes, X509Certificate } from 'node:crypto';
import { parseArgs, str, num, type Args } from '../common/args.ts';
import { createSignallingServer } from './signalling.ts';
import { ROOM_PATTERN, SIGNAL_PATH, type IceServerConfig } from './signal-protocol.ts';

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

/** Static files from `root` with single-range support (model weights are read by range). */
export function staticHandler(root: string): (req: IncomingMessage, res: ServerResponse) => void {
  const base = resolve(root);
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      res.writeHead(400).end('bad url');
      return;
    }
    let file = resolve(base, '.' + pathname);
    if (file !== base && !file.startsWith(base + sep)) {
      res.writeHead(403).end('forbidden');
      return;
    }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end(`not found: ${pathname}`);
      return;
    }
    const size = statSync(file).size;
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
      if (start > end || start >= size) {
        res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
        return;
      }
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['Content-Length'] = size === 0 ? 0 : end - start + 1;
    res.writeHead(status, headers);
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    createReadStream(file, { start, end }).pipe(res);
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const port = num(args, 'port', 8443);
  const host = str(args, 'host', '0.0.0.0');
  const dist = str(args, 'dist', 'dist');
  const plain = args.get('http') === true;
  const room = str(args, 'room', `mesh-${randomBytes(3).toString('hex')}`);
  if (!ROOM_PATTERN.test(room)) throw new Error('--room must be 1-64 characters of A-Z a-z 0-9 . _ -');
  const secret = args.get('secret');
  const iceServers = iceServersFromArgs(args);
  if (!existsSync(join(dist, 'index.html')) && !existsSync(dist)) {
    throw new Error(`${dist}/ does not exist: run \`npm run build\` first (\`npm start\` does)`);
  }

  const ips = lanAddresses();
  const handler = staticHandler(dist);
  let server;
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
    iceServers,
    roomSecrets: typeof secret === 'string' ? { [room]: secret } : undefined,
    log: (l) => console.log(l),
  });
  signalling.attach(server, SIGNAL_PATH);
  await new Promise<void>((r, j) => {
    server.once('error', j);
    server.listen(port, host, () => r());
  });

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

  const stop = (): void => {
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
