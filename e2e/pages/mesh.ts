// Browser side of e2e/mesh.spec.ts: one tab = one mesh node (leader or echo stage). Playwright
// calls these exports through e2e/harness.ts. State lives in this module (one node per tab).

import { SignalClient, SignallingError } from '../../src/mesh/signal-client.ts';
import { Ring } from '../../src/mesh/ring.ts';
import { encodeMessage, PROTOCOL_VERSION, type MeshMessage } from '../../src/mesh/protocol.ts';
import type { LinkCloseEvent, LinkStats } from '../../src/mesh/peer.ts';
import type { LevelPacket } from '../../src/pipeline/contract.ts';

interface NodeState {
  signal: SignalClient;
  ring: Promise<Ring>;
  events: (LinkCloseEvent & { type: 'peer-lost' | 'error'; at: number })[];
  forwarded: number;
}
let node: NodeState | null = null;

export interface JoinArgs {
  room: string;
  secret?: string;
  role: 'leader' | 'stage';
  name?: string;
  /** Leader: how many stages to wait for. */
  stages?: number;
  hopDelayMs?: number;
  frameBytes?: number;
}

export type JoinResult = { id: string } | { error: { code: string; message: string } };

/** Joins the signalling room and starts forming the ring in the background (see meshReady). */
export async function meshJoin(args: JoinArgs): Promise<JoinResult> {
  let signal: SignalClient;
  try {
    signal = await SignalClient.connect({ room: args.room, secret: args.secret, meta: { role: args.role, name: args.name ?? '' } });
  } catch (e) {
    if (e instanceof SignallingError) return { error: { code: e.reason, message: e.message } };
    throw e;
  }
  const opts = { name: args.name, hopDelayMs: args.hopDelayMs, frameBytes: args.frameBytes, pingIntervalMs: 250, timeoutMs: 2000 };
  const ring = args.role === 'leader' ? Ring.lead(signal, { ...opts, stages: args.stages ?? 1 }) : Ring.join(signal, opts);
  const state: NodeState = { signal, ring, events: [], forwarded: 0 };
  node = state;
  ring.catch(() => {});
  void ring.then((r) => {
    r.on('peer-lost', (e) => state.events.push({ ...e, type: 'peer-lost', at: performance.now() }));
    r.on('error', (e) => state.events.push({ ...e, type: 'error', at: performance.now() }));
    if (args.role === 'stage') {
      // Direct lane: echo straight back to the leader (one-hop round trips, see meshDirectBench).
      r.onDirect((from, bytes) => void r.sendDirect(from, bytes));
      // Echo stage: add 1 to the first hidden value (proof this stage saw it) and pass it on.
      r.onPrev((_bytes, msg) => {
        if (msg.type === 'level' && msg.packet.hidden) msg.packet.hidden[0] += 1;
        state.forwarded++;
        void r.sendNextMessage(msg);
      });
    }
  });
  return { id: signal.id };
}

/** Waits for the ring; returns this node's view of it. */
export async function meshReady(): Promise<{ index: number; order: string[]; prev: string; next: string }> {
  const r = await need().ring;
  return { index: r.index, order: r.order, prev: r.prev, next: r.next };
}

/** JSON with sorted keys (decoded objects need not list fields in the sender's order). */
function canon(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x,
  );
}

function need(): NodeState {
  if (!node) throw new Error('meshJoin first');
  return node;
}

function level(step: number, rows: number, hidden: number): LevelPacket {
  const data = new Float32Array(rows * hidden);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(step * 1000 + i) * 10;
  return {
    request: 1,
    step,
    epoch: 0,
    verdict: step % 2 ? { epoch: 0, commit: [step], release: [step + 100] } : null,
    rows: Array.from({ length: rows }, (_, r) => ({
      node: step * 100 + r,
      token: (step * 7 + r) % 32000,
      position: step + r,
      slot: r,
      uniform: ((step * 31 + r) % 97) / 97,
      ancestors: r ? [r - 1] : [],
    })),
    hidden: data,
    logitsRows: [0],
  };
}

export interface SendArgs {
  count: number;
  rows: number;
  hidden: number;
  /** How many in flight at once (1: one round trip after another). */
  window?: number;
  dtype?: 'f32' | 'f16';
}

export interface SendResult {
  ok: boolean;
  problems: string[];
  messageBytes: number;
  totalMs: number;
  /** Time around the ring per message when sent one at a time (window 1), ms. */
  roundTripMs: number[];
}

/** Leader: sends `count` levels around the ring and checks each comes back intact and in order. */
export async function meshSendLevels(args: SendArgs): Promise<SendResult> {
  const ring = await need().ring;
  const stages = ring.order.length - 1;
  const window = args.window ?? args.count;
  const problems: string[] = [];
  const roundTripMs: number[] = [];
  let received = 0;
  const sentAt: number[] = [];
  let wake: () => void = () => {};
  const off = ring.onPrev((_bytes, msg: MeshMessage) => {
    const i = received++;
    roundTripMs.push(performance.now() - sentAt[i]);
    const want = level(i, args.rows, args.hidden);
    if (msg.type !== 'level') {
      problems.push(`message ${i}: ${msg.type}`);
    } else {
      const p = msg.packet;
      if (p.step !== i) problems.push(`message ${i} arrived as step ${p.step} (out of order)`);
      if (canon([p.rows, p.verdict, p.logitsRows]) !== canon([want.rows, want.verdict, want.logitsRows])) {
        problems.push(`message ${i}: row metadata differs`);
      }
      const h = p.hidden;
      const w = want.hidden!;
      if (!h || h.length !== w.length) problems.push(`message ${i}: hidden length ${h?.length}`);
      else if (args.dtype !== 'f16') {
        if (Math.abs(h[0] - (w[0] + stages)) > 1e-3) problems.push(`message ${i}: hidden[0] ${h[0]}, want ${w[0] + stages}`);
        for (let k = 1; k < w.length; k++) {
          if (h[k] !== w[k]) {
            problems.push(`message ${i}: hidden[${k}] ${h[k]} != ${w[k]}`);
            break;
          }
        }
      }
    }
    wake();
  });
  const t0 = performance.now();
  let messageBytes = 0;
  for (let i = 0; i < args.count; i++) {
    while (i - received >= window) await new Promise<void>((r) => (wake = r));
    const bytes = encodeMessage({ type: 'level', packet: level(i, args.rows, args.hidden) }, { dtype: args.dtype });
    messageBytes = bytes.length;
    sentAt[i] = performance.now();
    await ring.sendNext(bytes);
  }
  const deadline = performance.now() + 60_000;
  while (received < args.count && performance.now() < deadline) await new Promise<void>((r) => ((wake = r), setTimeout(r, 100)));
  off();
  if (received !== args.count) problems.push(`received ${received} of ${args.count}`);
  return { ok: problems.length === 0, problems, messageBytes, totalMs: performance.now() - t0, roundTripMs };
}

export function meshStats(): Promise<{ id: string; index: number; links: LinkStats[] }> {
  return need().ring.then((r) => ({ id: r.id, index: r.index, links: r.stats() }));
}

export async function meshResetStats(): Promise<void> {
  (await need().ring).resetStats();
}

export function meshEvents(): { type: string; peer: string; kind: string; message: string; at: number }[] {
  return need().events.map((e) => ({ type: e.type, peer: e.peer, kind: e.kind, message: e.message, at: e.at }));
}

/** Sends a message with the wrong protocol version to `peer` (a ring neighbour or the leader's stage). */
export async function meshSendMalformed(peer: string): Promise<number> {
  const ring = await need().ring;
  const link = ring.link(peer);
  if (!link) throw new Error(`no link to ${peer}`);
  const bytes = encodeMessage({ type: 'level', packet: level(0, 1, 8) });
  bytes[4] = PROTOCOL_VERSION + 1;
  await link.sendUnchecked(bytes);
  return performance.now();
}

export function meshNow(): number {
  return performance.now();
}

/** Blocks this tab's main thread for `ms` (a hung tab: it stops answering pings). */
export function meshBlock(ms: number): number {
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end) n++;
  return n;
}

/** Leader: round trips leader -> stage -> leader on the direct lane for messages of each size. */
export async function meshDirectBench(args: { peer: string; sizes: number[]; reps: number }): Promise<{ bytes: number; p50: number; min: number }[]> {
  const ring = await need().ring;
  const out: { bytes: number; p50: number; min: number }[] = [];
  let wake: () => void = () => {};
  const off = ring.onDirect(() => wake());
  for (const size of args.sizes) {
    const hidden = Math.max(1, Math.floor((size - 128) / 4));
    const bytes = encodeMessage({ type: 'level', packet: { ...level(0, 1, hidden), verdict: null, logitsRows: [] } });
    const times: number[] = [];
    for (let i = 0; i < args.reps; i++) {
      const t0 = performance.now();
      const back = new Promise<void>((r) => (wake = r));
      await ring.sendDirect(args.peer, bytes);
      await back;
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    out.push({ bytes: bytes.length, p50: times[Math.floor(times.length / 2)], min: times[0] });
  }
  off();
  return out;
}
