// The mesh transport in real browsers: four tabs (leader + three echo stages) in two separate
// Chromium processes join one room on the Vite dev server's signalling endpoint, form a ring over
// WebRTC, and pass 64 KiB+ levels around it. Also: a wrong secret is refused, a closed tab is
// noticed within seconds, a wrong-version message closes the link with a clear error.
import { test, expect, chromium, type Browser, type Page, type WebSocket } from '@playwright/test';
import { findChromium, chromiumArgs } from '../src/cli/browser.ts';
import { openHarness, callInPage } from './harness.ts';
import type { JoinResult, SendResult } from './pages/mesh.ts';
import type { LinkStats } from '../src/mesh/peer.ts';
import { PROTOCOL_VERSION } from '../src/mesh/protocol-schema.ts';

const PAGE = '/e2e/pages/mesh.ts';
// Data-channel message size (frame) for the experiment knob; default 64 KiB.
const FRAME_BYTES = process.env.MESH_FRAME_BYTES ? Number(process.env.MESH_FRAME_BYTES) : undefined;

test('mesh: ring of 4 tabs over 2 browser processes', async ({}, testInfo) => {
  const baseURL = testInfo.project.use.baseURL ?? `http://127.0.0.1:${process.env.TEST_PORT ?? 5179}`;
  const browsers: Browser[] = [];
  const sockets: WebSocket[] = [];
  const open = async (b: Browser): Promise<Page> => {
    const ctx = await b.newContext({ baseURL });
    const page = await ctx.newPage();
    page.on('websocket', (ws) => sockets.push(ws));
    await openHarness(page);
    return page;
  };
  try {
    for (let i = 0; i < 2; i++) browsers.push(await chromium.launch({ executablePath: findChromium(), args: chromiumArgs }));
    const [A, B] = browsers;
    const leader = await open(A);
    const s1 = await open(B);
    const s2 = await open(A);
    const s3 = await open(B);
    const room = `e2e-${Date.now().toString(36)}`;
    const secret = 'correct horse';

    const join = (p: Page, role: 'leader' | 'stage', name: string, sec = secret): Promise<JoinResult> =>
      callInPage<JoinResult>(p, PAGE, 'meshJoin', { room, secret: sec, role, name, stages: 3, frameBytes: FRAME_BYTES });
    const lj = await join(leader, 'leader', 'leader');
    expect(lj).toHaveProperty('id');

    // A tab with the wrong secret is refused with a clear message.
    const intruder = await open(B);
    const refused = await join(intruder, 'stage', 'intruder', 'wrong');
    expect(refused).toEqual({ error: { code: 'wrong-secret', message: `wrong secret for room "${room}"` } });
    const noSecret = await callInPage<JoinResult>(intruder, PAGE, 'meshJoin', { room, role: 'stage' });
    expect(noSecret).toMatchObject({ error: { code: 'secret-required' } });
    await intruder.close();

    const ids: string[] = [];
    for (const [p, n] of [[s1, 's1'], [s2, 's2'], [s3, 's3']] as const) ids.push(((await join(p, 'stage', n)) as { id: string }).id);
    const t0 = Date.now();
    const views = await Promise.all([leader, s1, s2, s3].map((p) => callInPage<{ index: number; order: string[] }>(p, PAGE, 'meshReady')));
    console.log(`ring formed in ${Date.now() - t0} ms: ${views[0].order.join(' -> ')} -> leader`);
    expect(views.map((v) => v.index)).toEqual([0, 1, 2, 3]);
    expect(views[0].order.slice(1)).toEqual(ids);
    // Vite's HMR websocket still works next to /signal on the same server.
    const hmr = sockets.filter((w) => !w.url().includes('/signal'));
    expect(hmr.length).toBeGreaterThan(0);
    expect(hmr.every((w) => !w.isClosed())).toBe(true);
    expect(sockets.filter((w) => w.url().endsWith('/signal')).length).toBeGreaterThanOrEqual(4);

    // 64 KiB+ levels around the ring: one at a time (latency), then 12 in flight (ordering, throughput).
    const one = await callInPage<SendResult>(leader, PAGE, 'meshSendLevels', { count: 10, rows: 4, hidden: 4096, window: 1 });
    expect(one.problems).toEqual([]);
    expect(one.messageBytes).toBeGreaterThan(64 * 1024);
    const sorted = [...one.roundTripMs].sort((a, b) => a - b);
    console.log(`${(one.messageBytes / 1024).toFixed(1)} KiB level around 4 hops: median ${sorted[5].toFixed(1)} ms (min ${sorted[0].toFixed(1)}, max ${sorted[9].toFixed(1)})`);
    const many = await callInPage<SendResult>(leader, PAGE, 'meshSendLevels', { count: 12, rows: 4, hidden: 4096 });
    expect(many.problems).toEqual([]);
    console.log(`12 levels pipelined: ${many.totalMs.toFixed(0)} ms (${((12 * many.messageBytes * 4) / 1024 / 1024 / (many.totalMs / 1000)).toFixed(1)} MiB/s of hops)`);
    // A level over Chrome's 256 KiB message limit is split into frames and put back together.
    const big = await callInPage<SendResult>(leader, PAGE, 'meshSendLevels', { count: 2, rows: 24, hidden: 4096 });
    expect(big.problems).toEqual([]);
    expect(big.messageBytes).toBeGreaterThan(256 * 1024);
    console.log(`${(big.messageBytes / 1024).toFixed(0)} KiB level around the ring: ${big.roundTripMs.map((x) => x.toFixed(0)).join(', ')} ms`);

    // One-hop round trips (leader -> stage -> leader) by message size: same process (s2), other process (s1).
    for (const [label, peer] of [['same process', ids[1]], ['other process', ids[0]]] as const) {
      const rows = await callInPage<{ bytes: number; p50: number; min: number }[]>(leader, PAGE, 'meshDirectBench', {
        peer,
        sizes: [16, 4096, 16384, 65536, 204800],
        reps: 9,
      });
      console.log(`round trip, ${label}: ${rows.map((r) => `${(r.bytes / 1024).toFixed(1)} KiB ${r.p50.toFixed(1)} ms (min ${r.min.toFixed(1)})`).join('; ')}`);
    }

    // Per-hop latency from each node's pings on idle links (pings queued behind bulk traffic excluded).
    for (const p of [leader, s1, s2, s3]) await callInPage(p, PAGE, 'meshResetStats');
    await leader.waitForTimeout(3000);
    for (const p of [leader, s1, s2, s3]) {
      const st = await callInPage<{ index: number; links: LinkStats[] }>(p, PAGE, 'meshStats');
      const names = ['leader', 's1', 's2', 's3'];
      const name = (id: string): string => names[views[0].order.indexOf(id)] ?? id;
      for (const l of st.links) {
        console.log(`  idle link ${names[st.index]} -> ${name(l.peer)}: rtt p50 ${l.rttP50?.toFixed(2)} ms, p95 ${l.rttP95?.toFixed(2)} ms (${l.rttSamples} pings)`);
        expect(l.rttSamples).toBeGreaterThan(0);
      }
    }

    // A closed tab is noticed by its neighbours within a few seconds.
    const tClose = Date.now();
    await s3.close();
    await expect
      .poll(async () => (await callInPage<{ peer: string }[]>(leader, PAGE, 'meshEvents')).map((e) => e.peer), { timeout: 6000, intervals: [100] })
      .toContain(ids[2]);
    const leaderNoticed = Date.now() - tClose;
    await expect
      .poll(async () => (await callInPage<{ peer: string }[]>(s2, PAGE, 'meshEvents')).map((e) => e.peer), { timeout: 6000, intervals: [100] })
      .toContain(ids[2]);
    console.log(`closed tab noticed by the leader after ${leaderNoticed} ms, by stage 2 after ${Date.now() - tClose} ms`);
    expect(leaderNoticed).toBeLessThan(5000);

    // A tab that stops answering (main thread blocked) is reported after the 2 s ping timeout.
    const tBlock = Date.now();
    const blocked = callInPage(s2, PAGE, 'meshBlock', 5000);
    await expect
      .poll(async () => (await callInPage<{ peer: string; kind: string }[]>(leader, PAGE, 'meshEvents')).filter((e) => e.peer === ids[1]).map((e) => e.kind), {
        timeout: 5000,
        intervals: [100],
      })
      .toContain('timeout');
    console.log(`hung tab reported by the leader after ${Date.now() - tBlock} ms`);
    await blocked;

    // A wrong-version message closes the link with a clear error on both ends.
    await callInPage(leader, PAGE, 'meshSendMalformed', ids[0]);
    await expect
      .poll(async () => (await callInPage<{ type: string; message: string }[]>(s1, PAGE, 'meshEvents')).filter((e) => e.type === 'error').map((e) => e.message), {
        timeout: 5000,
      })
      .toContainEqual(expect.stringMatching(new RegExp(`malformed message from .*bad-version: protocol version ${PROTOCOL_VERSION + 1}, this build speaks version ${PROTOCOL_VERSION}`)));
    await expect
      .poll(async () => (await callInPage<{ type: string; message: string; kind: string; peer: string }[]>(leader, PAGE, 'meshEvents')).filter((e) => e.peer === ids[0] || e.type === 'error').map((e) => e.kind), {
        timeout: 5000,
      })
      .toContain('remote-error');
  } finally {
    for (const b of browsers) await b.close();
  }
});
