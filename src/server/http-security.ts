// What the HTTP side says and checks for safety: the security headers of every response of
// `npm start`, the Origin check of WebSocket upgrades, and a plain HTTP refusal of an upgrade.

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

/** A Host header we are willing to repeat in a header (host name or IP, optional port). */
const HOST_PATTERN = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * The Content-Security-Policy of the built app: its own scripts and styles only (no inline code, no
 * eval), SVG from innerHTML, models fetched from this server or any https URL (Hugging Face
 * `resolve` links redirect to other https hosts), the signalling WebSocket on this host. WebGPU and
 * WebRTC data channels are outside CSP's reach; workers (the draft model, the CPU backend's threads)
 * are this server's own scripts (blob: allowed too).
 */
export function contentSecurityPolicy(https: boolean, host: string | undefined): string {
  const ws = host && HOST_PATTERN.test(host) ? ` ${https ? 'wss' : 'ws'}://${host}` : '';
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    `connect-src 'self'${ws} https:${https ? '' : ' http:'}`,
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Headers for every HTTP response of `npm start`. HSTS only over https (browsers ignore it on http). */
export function securityHeaders(https: boolean, host: string | undefined): Record<string, string> {
  const h: Record<string, string> = {
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': contentSecurityPolicy(https, host),
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
    'Cross-Origin-Opener-Policy': 'same-origin',
    // With COOP, makes the page cross-origin isolated: SharedArrayBuffer for the CPU backend's
    // threads (src/cpu). Models from other origins are fetched with CORS, which COEP allows.
    'Cross-Origin-Embedder-Policy': 'require-corp',
  };
  if (https) h['Strict-Transport-Security'] = 'max-age=15552000';
  return h;
}

/**
 * Whether a WebSocket upgrade may proceed: no Origin header (a program, not a page: allowed), an
 * Origin whose host:port is the Host the request was sent to (the page this server served), or one
 * of `allowed` ('*' allows every origin).
 */
export function originAllowed(req: IncomingMessage, allowed: readonly string[]): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  if (allowed.includes('*')) return true;
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return false; // 'null' (sandboxed frames, file://) and junk
  }
  if (allowed.some((a) => sameOrigin(a, u))) return true;
  const host = req.headers.host?.toLowerCase();
  return host !== undefined && u.host === host && (u.protocol === 'http:' || u.protocol === 'https:');
}

function sameOrigin(a: string, u: URL): boolean {
  try {
    return new URL(a).origin === u.origin;
  } catch {
    return false;
  }
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 429: 'Too Many Requests', 503: 'Service Unavailable' };

/** Answers an upgrade request with an HTTP error and `message` as the body, then closes the socket. */
export function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  if (socket.destroyed) return;
  socket.on('error', () => socket.destroy()); // a reset while we answer is no one's problem
  const body = `${message}\n`;
  const head = [
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'X-Content-Type-Options: nosniff',
  ];
  socket.once('finish', () => socket.destroy());
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
  setTimeout(() => socket.destroy(), 2000).unref();
}
