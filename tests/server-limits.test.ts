// The server's small pieces: close reasons cut by UTF-8 bytes, address keys, token buckets, the
// capped log, the Origin check and the headers (the servers that use them: server-signalling and
// server-main tests).
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { addressKey, LimitedLog, TokenBucket, truncateUtf8 } from '../src/server/limits.ts';
import { originAllowed, securityHeaders } from '../src/server/http-security.ts';

describe('server limits', () => {
  it('cuts close reasons to 123 bytes of UTF-8, never inside a character', () => {
    expect(truncateUtf8('short reason')).toBe('short reason');
    for (const ch of ['語', 'é', '🙂', 'a']) {
      const cut = truncateUtf8(`signalling version ${ch.repeat(120)} is not supported`);
      expect(Buffer.byteLength(cut, 'utf8')).toBeLessThanOrEqual(123);
      expect(cut.endsWith('…')).toBe(true);
      expect(cut).not.toContain('\uFFFD');
      expect(Buffer.from(cut, 'utf8').toString('utf8')).toBe(cut);
    }
  });

  it('keys addresses: IPv4 (also mapped), IPv6 by /64', () => {
    expect(addressKey('127.0.0.1')).toBe('127.0.0.1');
    expect(addressKey('::ffff:192.168.1.23')).toBe('192.168.1.23');
    expect(addressKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey(undefined)).toBe('?');
  });

  it('token buckets: a burst, then a rate, and how long to wait', () => {
    let t = 0;
    const b = new TokenBucket(3, 6, () => t);
    expect([b.take(), b.take(), b.take(), b.take()]).toEqual([true, true, true, false]);
    expect(b.waitMs()).toBe(10_000);
    t = 10_000;
    expect(b.available()).toBe(true);
    expect(b.take()).toBe(true);
    expect(b.full()).toBe(false);
    t = 60_000;
    expect(b.full()).toBe(true);
  });

  it('a log capped per address per window, the surplus counted', () => {
    let t = 0;
    const lines: string[] = [];
    const log = new LimitedLog((l) => lines.push(l), 2, 1000, () => t);
    for (let i = 0; i < 5; i++) log.line('1.2.3.4', `a${i}`);
    log.line('5.6.7.8', 'b0');
    expect(lines).toEqual(['a0', 'a1', 'b0']);
    t = 1000;
    log.flush();
    expect(lines.slice(3)).toEqual(['[server] 3 more log lines about 1.2.3.4 held back (over 2 in 1 s)']);
  });

  it('takes upgrades from programs, pages of the same host, allowed origins; nothing else', () => {
    const req = (origin?: string, host = '127.0.0.1:8443') => ({ headers: { origin, host } }) as unknown as IncomingMessage;
    expect(originAllowed(req(), [])).toBe(true);
    expect(originAllowed(req('https://127.0.0.1:8443'), [])).toBe(true);
    expect(originAllowed(req('https://127.0.0.1:9999'), [])).toBe(false);
    expect(originAllowed(req('https://evil.example'), [])).toBe(false);
    expect(originAllowed(req('null'), [])).toBe(false);
    expect(originAllowed(req('https://mesh.example'), ['https://mesh.example/'])).toBe(true);
    expect(originAllowed(req('https://evil.example'), ['*'])).toBe(true);
  });

  it('security headers: HSTS only over https, a CSP that names this host for wss', () => {
    const h = securityHeaders(true, '192.168.1.23:8443');
    expect(h['Strict-Transport-Security']).toMatch(/^max-age=/);
    expect(h['Content-Security-Policy']).toContain("connect-src 'self' wss://192.168.1.23:8443 https:");
    expect(securityHeaders(false, 'x:1')['Strict-Transport-Security']).toBeUndefined();
    // Cross-origin isolated (COOP + COEP): SharedArrayBuffer for the CPU backend's threads.
    expect(h['Cross-Origin-Opener-Policy']).toBe('same-origin');
    expect(h['Cross-Origin-Embedder-Policy']).toBe('require-corp');
    // A Host header that is not a host is never repeated into a header.
    expect(securityHeaders(true, 'evil; script-src *')['Content-Security-Policy']).toContain("connect-src 'self' https:");
  });
});
