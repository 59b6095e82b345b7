// RingPipeline (leader) and RingStage (each stage tab) over an in-memory ring whose links encode
// every message with the real wire protocol and deliver it later, in order: the scheduler's
// output must equal the single-tab reference in every mode, request after request.
import { describe, it, expect, vi } from 'vitest';
import { RingPipeline, type LeaderPort } from '../src/mesh/ring-pipeline.ts';
import { RingStage } from '../src/mesh/ring-stage.ts';
import { decodeMessage, encodeMessage, type EncodeOptions, type MeshMessage, type PayloadDtype } from '../src/mesh/protocol.ts';
import { generate, reservedSlots } from '../src/speculative/scheduler.ts';
import { referenceGenerate } from './support/toy-lm.ts';
import { EOS, makeTarget, oracle, ToyStage } from './support/speculative-helpers.ts';

type Handler = (from: string, msg: MeshMessage) => void;

/** Leader "L" and stages "s1".."sN"; one FIFO per (from, to, lane), delivered a few ticks later. */
function memoryRing(n: number) {
  const ids = ['L', ...Array.from({ length: n }, (_, i) => `s${i + 1}`)];
  const ring = new Map<string, Handler[]>();
  const direct = new Map<string, Handler[]>();
  const tails = new Map<string, Promise<void>>();
  const deliver = (lane: 'ring' | 'direct', from: string, to: string, msg: MeshMessage, opts?: EncodeOptions): Promise<void> => {
    const bytes = encodeMessage(msg, opts);
    const key = `${from}>${to}:${lane}`;
    const tail = (tails.get(key) ?? Promise.resolve()).then(async () => {
      for (let i = 0; i < 1 + (bytes.length % 3); i++) await new Promise((r) => setImmediate(r));
      for (const h of (lane === 'ring' ? ring : direct).get(to) ?? []) h(from, decodeMessage(bytes));
    });
    tails.set(key, tail);
    return Promise.resolve();
  };
  const on = (map: Map<string, Handler[]>, id: string, h: Handler): (() => void) => {
    map.set(id, [...(map.get(id) ?? []), h]);
    return () => map.set(id, (map.get(id) ?? []).filter((x) => x !== h));
  };
  const next = (id: string): string => ids[(ids.indexOf(id) + 1) % ids.length];
  const leader: LeaderPort = {
    sendNextMessage: (msg, opts) => deliver('ring', 'L', next('L'), msg, opts),
    onPrev: (fn) => on(ring, 'L', (_from, msg) => fn(new Uint8Array(0), msg)),
    onDirect: (fn) => on(direct, 'L', (from, msg) => fn(from, new Uint8Array(0), msg)),
  };
  const stagePort = (id: string) => ({
    sendNext: (msg: MeshMessage, opts?: EncodeOptions) => deliver('ring', id, next(id), msg, opts),
    sendLeader: (msg: MeshMessage) => deliver('direct', id, 'L', msg),
    onPrev: (fn: (msg: MeshMessage) => void) => on(ring, id, (_from, msg) => fn(msg)),
  });
  return { leader, stagePort, stageIds: ids.slice(1) };
}

function setup(S: number, wire: PayloadDtype, numSlots: number) {
  const target = makeTarget(41);
  const net = memoryRing(S);
  const computes = net.stageIds.map((_, i) => new ToyStage(i, i === S - 1, target));
  const stages = net.stageIds.map((id, i) => {
    const port = net.stagePort(id);
    const st = new RingStage(port);
    st.onError = (e) => {
      throw e;
    };
    port.onPrev((msg) => st.handle(msg));
    void st.setCompute(computes[i], { layers: { start: i, end: i + 1 }, embed: i === 0, head: i === S - 1 }, wire);
    return st;
  });
  const pipeline = new RingPipeline(net.leader, { numStages: S, numSlots, firstStage: net.stageIds[0] });
  return { target, pipeline, stages, computes, leader: net.leader };
}

describe('RingPipeline + RingStage over an in-memory ring', () => {
  const sampling = { temperature: 0.8, topK: 30, topP: 0.95, seed: 77 };
  const prompt = [3, 14, 15, 9, 26];
  const N = 40;

  for (const [S, wire] of [[1, 'f32'], [3, 'f32'], [4, 'f16']] as const) {
    it(`S=${S}, ${wire} hidden states: every mode equals the reference, request after request`, async () => {
      const numSlots = prompt.length + N + reservedSlots('specpipe', S, { width: 3 }) + 8;
      const { target, pipeline, computes, stages } = setup(S, wire, numSlots);
      const ref = referenceGenerate(target, prompt, N, sampling, [EOS]);
      let request = 1;
      for (const [mode, width] of [['pp', 1], ['specpipe', 1], ['specpipe', 3], ['tree', 2]] as const) {
        const res = await generate(pipeline, { mode, prompt, maxNewTokens: N, sampling, eosTokens: [EOS], source: oracle(target, sampling, 0.7), width, request: request++ });
        expect(res.tokens, `${mode} W=${width}`).toEqual(ref.tokens);
        // The final verdict reaches every stage: only committed slots are left.
        await vi.waitFor(() => computes.forEach((c) => expect(c.heldSlots()).toBe(0)));
      }
      expect(stages[0].stats()).toMatchObject({ request: request - 1 });
      expect(pipeline.tripsMs.length).toBeGreaterThan(0);
      pipeline.dispose();
    });
  }

  it('an interrupted request continues losslessly as a new request over the committed tokens', async () => {
    const S = 3;
    const { target, pipeline } = setup(S, 'f32', prompt.length + N + 20);
    const ref = referenceGenerate(target, prompt, N, sampling, [EOS]);
    expect(ref.tokens.length).toBeGreaterThan(12);
    const ctl = new AbortController();
    const first = await generate(pipeline, {
      mode: 'specpipe', prompt, maxNewTokens: N, sampling, eosTokens: [EOS], source: oracle(target, sampling, 0.5), request: 1, signal: ctl.signal,
      onToken: (_t, i) => i === 9 && ctl.abort(),
    });
    expect(first.stopReason).toBe('abort');
    // Levels of request 1 may still be in flight: the stages skip them once request 2 begins.
    const rest = await generate(pipeline, { mode: 'pp', prompt: [...prompt, ...first.tokens], maxNewTokens: N - first.tokens.length, sampling, eosTokens: [EOS], request: 2 });
    expect([...first.tokens, ...rest.tokens]).toEqual(ref.tokens);
  });

  it('partial recovery: a resumed request skips the positions each stage kept; only a replaced stage prefills them', async () => {
    const S = 3;
    const numSlots = prompt.length + N + 20;
    const { target, pipeline, stages, leader } = setup(S, 'f32', numSlots);
    const ref = referenceGenerate(target, prompt, N, sampling, [EOS]);
    const ctl = new AbortController();
    const first = await generate(pipeline, {
      mode: 'specpipe', prompt, maxNewTokens: N, sampling, eosTokens: [EOS], source: oracle(target, sampling, 0.6), width: 2, request: 1, signal: ctl.signal,
      onToken: (_t, i) => i === 11 && ctl.abort(),
    });
    pipeline.dispose();
    // Stage 2's tab is gone: a fresh one takes its layers, with an empty KV.
    await stages[1].setCompute(new ToyStage(1, false, target), { layers: { start: 1, end: 2 }, embed: false, head: false }, 'f32');
    const resumed = new Map<string, Extract<MeshMessage, { type: 'resumed' }>>();
    leader.onDirect((from, _b, msg) => msg.type === 'resumed' && resumed.set(from, msg));
    const keep = prompt.length + first.tokens.length - 1;
    const again = new RingPipeline(leader, { numStages: S, numSlots, firstStage: 's1', keep });
    const rest = await generate(again, { mode: 'specpipe', prompt: [...prompt, ...first.tokens], maxNewTokens: N - first.tokens.length, sampling, eosTokens: [EOS], source: oracle(target, sampling, 0.6), width: 2, request: 2 });
    expect([...first.tokens, ...rest.tokens]).toEqual(ref.tokens);
    await vi.waitFor(() => expect(resumed.size).toBe(3));
    // The replacement computed every committed position again; the others at most the few whose commit had not reached them.
    expect(resumed.get('s2')).toMatchObject({ request: 2, keep, kept: 0, prefilled: keep });
    for (const id of ['s1', 's3']) {
      const r = resumed.get(id)!;
      expect(r.kept + r.prefilled, JSON.stringify([...resumed])).toBe(keep);
      expect(r.prefilled, JSON.stringify([...resumed])).toBeLessThanOrEqual(S);
      expect(r.prefilled).toBeLessThanOrEqual(S);
    }
    // A later request that resumes nothing starts from an empty KV everywhere.
    const fresh = await generate(again, { mode: 'pp', prompt, maxNewTokens: N, sampling, eosTokens: [EOS], request: 3 });
    expect(fresh.tokens).toEqual(ref.tokens);
    again.dispose();
  });

  it('cut again and again (aborted, or the pipeline failed as on a lost stage) and resumed with stages replaced: always the reference tokens', async () => {
    const S = 3;
    const numSlots = prompt.length + N + 20;
    for (let trial = 0; trial < 24; trial++) {
      const { target, pipeline, stages, leader } = setup(S, 'f32', numSlots);
      const ref = referenceGenerate(target, prompt, N, sampling, [EOS]);
      let committed: number[] = [];
      let pipe = pipeline;
      for (let round = 0; round < 4 && committed.length < ref.tokens.length; round++) {
        if (round > 0) {
          pipe.dispose();
          const k = (trial + round) % S;
          if ((trial + round) % 2 === 0) await stages[k].setCompute(new ToyStage(k, k === S - 1, target), { layers: { start: k, end: k + 1 }, embed: k === 0, head: k === S - 1 }, 'f32');
          pipe = new RingPipeline(leader, { numStages: S, numSlots, firstStage: 's1', keep: prompt.length + committed.length - 1 });
        }
        const ctl = new AbortController();
        const cut = 2 + ((trial * 7 + round * 5) % 9);
        const got: number[] = [];
        const current = pipe;
        await generate(current, {
          mode: trial % 3 === 0 ? 'pp' : 'specpipe', prompt: [...prompt, ...committed], maxNewTokens: N - committed.length, sampling, eosTokens: [EOS],
          source: oracle(target, sampling, 0.6), width: 1 + (trial % 3), request: round + 1, signal: ctl.signal,
          onToken: (t, i) => {
            got.push(t);
            if (i === cut) trial % 2 ? current.fail(new Error('stage lost')) : ctl.abort();
          },
        }).catch((e: unknown) => expect(String(e)).toContain('stage lost'));
        committed = [...committed, ...got];
      }
      expect(committed, `trial ${trial}`).toEqual(ref.tokens.slice(0, committed.length));
      expect(committed.length).toBeGreaterThan(20);
      pipe.dispose();
    }
  });

  it('credit counts stage 1 acknowledgements for the current request only; fail() rejects waiters', async () => {
    const sent: MeshMessage[] = [];
    let prev: (b: Uint8Array, m: MeshMessage) => void = () => undefined;
    let directFn: (from: string, b: Uint8Array, m: MeshMessage) => void = () => undefined;
    const port: LeaderPort = {
      sendNextMessage: async (msg) => void sent.push(msg),
      onPrev: (fn) => ((prev = fn), () => undefined),
      onDirect: (fn) => ((directFn = fn), () => undefined),
    };
    const p = new RingPipeline(port, { numStages: 2, numSlots: 64, firstStage: 's1', depth: 1 });
    const config = { request: 5, temperature: 0, topK: 0, topP: 1 };
    const begun = p.begin(config);
    await Promise.resolve();
    expect(sent[0]).toEqual({ type: 'config', config });
    prev(new Uint8Array(0), { type: 'config', config });
    await begun;
    const level = { request: 5, step: 0, epoch: 0, verdict: null, rows: [], hidden: null, logitsRows: [] };
    expect(p.credit()).toBe(2);
    p.send(level);
    p.send({ ...level, step: 1 });
    expect(p.credit()).toBe(0);
    directFn('s2', new Uint8Array(0), { type: 'credit', request: 5, processed: 1 }); // not stage 1
    directFn('s1', new Uint8Array(0), { type: 'credit', request: 4, processed: 1 }); // old request
    expect(p.credit()).toBe(0);
    directFn('s1', new Uint8Array(0), { type: 'credit', request: 5, processed: 1 });
    expect(p.credit()).toBe(1);
    await p.waitForProgress(); // the credit woke it
    // stage 1 keeps up, but the ring holds at most S + depth = 3 levels until results return
    p.send({ ...level, step: 2 });
    directFn('s1', new Uint8Array(0), { type: 'credit', request: 5, processed: 3 });
    expect(p.credit()).toBe(0);
    const got: number[] = [];
    p.onResult((r) => got.push(r.step));
    prev(new Uint8Array(0), { type: 'result', packet: { request: 4, step: 0, epoch: 0, nodes: [], tokens: [], logits: null, logitsRows: [] } });
    prev(new Uint8Array(0), { type: 'result', packet: { request: 5, step: 1, epoch: 0, nodes: [], tokens: [], logits: null, logitsRows: [] } });
    expect(got).toEqual([1]);
    expect(p.credit()).toBe(1);
    await p.waitForProgress(); // latched by the result
    const waiting = p.waitForProgress();
    p.fail(new Error('stage s2 lost'));
    await expect(waiting).rejects.toThrow('stage s2 lost');
    await expect(p.waitForProgress()).rejects.toThrow('stage s2 lost');
    await expect(p.begin({ ...config, request: 6 })).rejects.toThrow('stage s2 lost');
  });
});
