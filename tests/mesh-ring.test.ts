// The ring in plain Node: real signalling server, real WebRTC (node-datachannel through
// webrtc-polyfill), one leader and three stages in one process.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createSignallingServer, type SignallingServer } from '../src/server/signalling.ts';
import { SignalClient, SignallingError, type WebSocketLike } from '../src/mesh/signal-client.ts';
import { Ring } from '../src/mesh/ring.ts';
import { encodeMessage, PROTOCOL_VERSION, type MeshMessage } from '../src/mesh/protocol.ts';
import type { LinkCloseEvent } from '../src/mesh/peer.ts';
import { randomLevel, rng } from './support/mesh-helpers.ts';

let http: Server;
let signalling: SignallingServer;
let url: string;
const rings: Ring[] = [];
const clients: SignalClient[] = [];

beforeAll(async () => {
  http = createServer();
  signalling = createSignallingServer();
  signalling.attach(http);
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}/signal`;
});
afterAll(async () => {
  for (const r of rings) r.close('test over');
  for (const c of clients) c.close();
  await new Promise((r) => setTimeout(r, 300));
  await signalling.close();
  await new Promise((r) => http.close(r));
});

const connect = async (room: string, role: string, secret?: string): Promise<SignalClient> => {
  const c = await SignalClient.connect({
    url,
    room,
    secret,
    meta: { role },
    createWebSocket: (u) => new WebSocket(u) as unknown as WebSocketLike,
  });
  clients.push(c);
  return c;
};

describe('ring over node-datachannel', () => {
  it('refuses a wrong secret with a clear SignallingError', async () => {
    await connect('locked', 'leader', 'right');
    await expect(connect('locked', 'stage', 'wrong')).rejects.toThrow(new SignallingError('wrong-secret', 'wrong secret for room "locked"'));
  });

  it('forms leader -> 3 stages -> leader and carries 64 KiB+ levels around in order', async () => {
    const lc = await connect('ring-a', 'leader');
    const sc = await Promise.all([connect('ring-a', 'stage'), connect('ring-a', 'stage'), connect('ring-a', 'stage')]);
    const step = (w: string): void => void (process.env.DEBUG_RING && console.log(`step ${w} ${performance.now().toFixed(0)}`));
    step('joined');
    const [leader, ...stages] = await Promise.all([Ring.lead(lc, { stages: 3, pingIntervalMs: 200 }), ...sc.map((c) => Ring.join(c, { pingIntervalMs: 200 }))]);
    rings.push(leader, ...stages);
    step('formed');
    expect(leader.order).toEqual([lc.id, ...sc.map((c) => c.id)]);
    expect(stages.map((s) => s.index)).toEqual([1, 2, 3]);
    expect(stages[2].next).toBe(lc.id);

    // Each stage forwards what it gets, adding 1 to the first hidden value.
    for (const s of stages) {
      s.onPrev((_bytes, msg) => {
        if (msg.type !== 'level' || !msg.packet.hidden) throw new Error('expected a level with hidden states');
        msg.packet.hidden[0] += 1;
        void s.sendNextMessage(msg);
      });
    }
    const got: MeshMessage[] = [];
    leader.onPrev((_b, msg) => got.push(msg));
    const rand = rng(7);
    const sent = Array.from({ length: 8 }, (_, i) => ({ ...randomLevel(rand, { rows: 4, hidden: 4200 }), step: i }));
    const t0 = performance.now();
    for (const p of sent) await leader.sendNextMessage({ type: 'level', packet: p });
    while (got.length < sent.length) await new Promise((r) => setTimeout(r, 10));
    const ms = performance.now() - t0;
    got.forEach((m, i) => {
      if (m.type !== 'level' || !m.packet.hidden || !sent[i].hidden) throw new Error('not a level');
      expect(m.packet.step).toBe(i);
      expect(m.packet.hidden[0]).toBeCloseTo(sent[i].hidden![0] + 3, 4);
      expect(Buffer.compare(new Uint8Array(m.packet.hidden.buffer, m.packet.hidden.byteOffset + 4, (m.packet.hidden.length - 1) * 4), new Uint8Array(sent[i].hidden!.buffer, 4, (sent[i].hidden!.length - 1) * 4))).toBe(0);
      expect(m.packet.rows).toEqual(sent[i].rows);
    });
    console.log(`8 x ${(encodeMessage({ type: 'level', packet: sent[0] }).length / 1024).toFixed(0)} KiB levels around a 4-hop ring: ${ms.toFixed(0)} ms`);
    await new Promise((r) => setTimeout(r, 600));
    const st = leader.stats();
    expect(st.every((s) => s.rttSamples > 0)).toBe(true);
    console.log('leader links', st.map((s) => `${s.peer}: p50 ${s.rttP50?.toFixed(2)} ms p95 ${s.rttP95?.toFixed(2)} ms`).join('; '));

    step('levels done');
    // A malformed (wrong-version) message closes that link with a clear error on both sides.
    const errors: LinkCloseEvent[] = [];
    stages[0].on('error', (e) => errors.push(e));
    leader.on('error', (e) => errors.push(e));
    const bad = encodeMessage({ type: 'level', packet: sent[0] });
    bad[4] = PROTOCOL_VERSION + 1;
    await leader.link(sc[0].id)!.sendUnchecked(bad);
    while (errors.length < 2) await new Promise((r) => setTimeout(r, 10));
    expect(errors.find((e) => e.kind === 'protocol')?.message).toMatch(new RegExp(`malformed message from .*bad-version: protocol version ${PROTOCOL_VERSION + 1}`));
    expect(errors.find((e) => e.kind === 'remote-error')?.message).toMatch(/closed the link: protocol: malformed message/);

    step('malformed done');
    // A stage that goes away is reported by its neighbours within a few seconds.
    const lost: [string, number][] = [];
    const t1 = performance.now();
    leader.on('peer-lost', (e) => lost.push([e.peer, performance.now() - t1]));
    stages[1].on('peer-lost', (e) => lost.push([e.peer, performance.now() - t1]));
    sc[2].close(); // stage 3 leaves the room ...
    stages[2].close('gone'); // ... and its links
    while (lost.filter(([p]) => p === sc[2].id).length < 1) await new Promise((r) => setTimeout(r, 20));
    expect(lost[0][1]).toBeLessThan(3000);

    step('lost done');
    // The leader re-forms the ring without stage 3 (stage 1's link, closed above, is rebuilt).
    await leader.reform([sc[0].id, sc[1].id], 15_000);
    expect(leader.order).toEqual([lc.id, sc[0].id, sc[1].id]);
    step('reformed');
    expect(leader.ringEpoch).toBe(2);
    while (stages[1].ringEpoch !== 2) await new Promise((r) => setTimeout(r, 10));
    expect(stages[1].next).toBe(lc.id);
    got.length = 0;
    for (const p of sent.slice(0, 3)) await leader.sendNextMessage({ type: 'level', packet: p });
    while (got.length < 3) await new Promise((r) => setTimeout(r, 10));
    expect(got.map((m) => (m.type === 'level' ? m.packet.step : -1))).toEqual([0, 1, 2]);
  }, 20_000);

  it('applies hopDelayMs on every hop, in order', async () => {
    const lc = await connect('ring-delay', 'leader');
    const sc = await Promise.all([connect('ring-delay', 'stage'), connect('ring-delay', 'stage')]);
    const opts = { hopDelayMs: 40, pingIntervalMs: 200 };
    const [leader, ...stages] = await Promise.all([Ring.lead(lc, { stages: 2, ...opts }), ...sc.map((c) => Ring.join(c, opts))]);
    rings.push(leader, ...stages);
    for (const s of stages) s.onPrev((bytes) => void s.sendNext(bytes));
    const arrivals: number[] = [];
    leader.onPrev((_b, msg) => arrivals.push(msg.type === 'level' ? msg.packet.step : -1));
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await leader.sendNextMessage({ type: 'level', packet: { ...randomLevel(rng(i), { rows: 1, hidden: 8 }), step: i } });
      while (arrivals.length <= i) await new Promise((r) => setTimeout(r, 2));
      times.push(performance.now() - t0);
    }
    expect(arrivals).toEqual([0, 1, 2, 3, 4]);
    times.sort((a, b) => a - b);
    console.log(`3 hops x 40 ms delay: ring trip ${times.map((t) => t.toFixed(0)).join(', ')} ms`);
    expect(times[0]).toBeGreaterThanOrEqual(120);
    expect(times[2]).toBeLessThan(120 + 100);
    await new Promise((r) => setTimeout(r, 500));
    // Pings go through the delay too: RTT >= 2 x 40 ms.
    expect(leader.stats().every((l) => (l.rttP50 ?? 0) >= 80)).toBe(true);
  }, 20_000);
});
