// The production host (`npm start` minus the build): HTTPS with a generated certificate, static
// files with ranges, and the signalling service on the same port over wss.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

const port = 20000 + Math.floor(Math.random() * 20000);
let child: ChildProcess;
let output = '';

function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += String(d)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  const dist = mkdtempSync(join(tmpdir(), 'mesh-dist-'));
  writeFileSync(join(dist, 'index.html'), '<!doctype html><title>mesh</title>');
  writeFileSync(join(dist, 'weights.bin'), '0123456789');
  child = spawn('npx', ['tsx', 'src/server/main.ts', '--port', String(port), '--host', '127.0.0.1', '--dist', dist, '--room', 'lan', '--secret', 's3'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d) => (output += String(d)));
  child.stderr?.on('data', (d) => (output += String(d)));
  const t0 = Date.now();
  while (!output.includes('Join link')) {
    if (Date.now() - t0 > 25_000 || child.exitCode !== null) throw new Error(`server did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}, 30_000);
afterAll(() => {
  child?.kill('SIGTERM');
});

describe('npm start server', () => {
  it('prints URLs and a join link with the room and secret', () => {
    expect(output).toContain(`https://127.0.0.1:${port}/`);
    expect(output).toMatch(/Join link for stage tabs: https:\/\/[\d.]+:\d+\/\?room=lan&stage#secret=s3/);
    expect(output).toMatch(/Leader \(the chat page; open it first\): https:\/\/[\d.]+:\d+\/\?room=lan#secret=s3/);
  });

  it('serves dist/ over HTTPS with ranges and refuses traversal', async () => {
    expect(await get('/')).toMatchObject({ status: 200, body: '<!doctype html><title>mesh</title>' });
    expect(await get('/weights.bin', { Range: 'bytes=2-5' })).toMatchObject({ status: 206, body: '2345' });
    expect(await get('/weights.bin', { Range: 'bytes=-3' })).toMatchObject({ status: 206, body: '789' });
    expect((await get('/weights.bin', { Range: 'bytes=20-' })).status).toBe(416);
    expect((await get('/nope.js')).status).toBe(404);
    expect((await get('/%2e%2e/%2e%2e/etc/passwd')).status).toBe(404); // URL parsing resolves the dots inside dist/
    expect((await get('/..%2F..%2F..%2Fetc%2Fpasswd')).status).toBe(403);
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
});
