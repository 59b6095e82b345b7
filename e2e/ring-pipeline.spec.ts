// Plain pipeline parallelism over a ring of tabs in two separate Chromium processes (real WebRTC,
// the Vite server's signalling, SwiftShader WebGPU): the ring gives exactly the single tab's greedy
// tokens with 2, 3 and 4 stages, keeps them when a stage tab is closed mid-generation, and reports
// a malformed message and a wrong secret clearly.
import { test, expect, chromium, type Browser, type Page } from '@playwright/test';
import { findChromium, chromiumArgs } from '../src/cli/browser.ts';
import { openHarness, callInPage } from './harness.ts';
import type { Outcome } from './pages/ring.ts';
import type { MeshRunReport, MeshStatus } from '../src/app/mesh-types.ts';
import type { GenerationRequest } from '../src/app/engine.ts';
import type { StageStatus } from '../src/app/stage-node.ts';
import type { LocalRunRequest } from '../src/headless/local-run.ts';
import type { GenerationReport } from '../src/app/engine.ts';
import { PROTOCOL_VERSION } from '../src/mesh/protocol-schema.ts';
import { RING_PAGE as PAGE, GREEDY, DEMO, TINY, tiny } from './mesh-fixtures.ts';

const SECRET = 'ring secret';

interface Mesh {
  room: string;
  leader: Page;
  stages: Page[];
  stageIds: string[];
}

let browsers: Browser[] = [];
let pages: Page[] = [];

test.beforeAll(async () => {
  for (let i = 0; i < 2; i++) browsers.push(await chromium.launch({ executablePath: findChromium(), args: chromiumArgs }));
});
test.afterAll(async () => {
  for (const b of browsers) await b.close();
  browsers = [];
});
test.afterEach(async () => {
  for (const p of pages) await p.close().catch(() => undefined);
  pages = [];
});

async function tab(browser: Browser, baseURL: string): Promise<Page> {
  const page = await (await browser.newContext({ baseURL })).newPage();
  pages.push(page);
  await openHarness(page);
  return page;
}

/** A leader in browser 0 and `stages` stage tabs alternating between the browsers (stage 1 in browser 1). */
async function mesh(baseURL: string, modelUrl: string, stages: number, extra: { hopDelayMs?: number; draftUrl?: string } = {}): Promise<Mesh> {
  const room = `ring-${modelUrl.length}-${stages}-${Date.now().toString(36)}`;
  const leader = await tab(browsers[0], baseURL);
  await callInPage(leader, PAGE, 'leaderStart', { room, secret: SECRET, stages, modelUrl, name: 'leader', ...extra });
  const stagePages: Page[] = [];
  for (let i = 0; i < stages; i++) stagePages.push(await tab(browsers[(i + 1) % 2], baseURL));
  const joined = await Promise.all(stagePages.map((p, i) => callInPage<{ id: string } | { error: string }>(p, PAGE, 'stageStart', { room, secret: SECRET, name: `s${i + 1}` })));
  const stageIds = joined.map((j) => {
    if (!('id' in j)) throw new Error(`stage did not join: ${j.error}`);
    return j.id;
  });
  const ready = await callInPage<Outcome>(leader, PAGE, 'leaderReady');
  if (!('ok' in ready)) for (const p of [leader, ...stagePages]) console.log('stalls', JSON.stringify(await callInPage(p, PAGE, 'stallsNow')));
  expect(ready).toEqual({ ok: true });
  return { room, leader, stages: stagePages, stageIds };
}

const run = (m: Mesh, req: GenerationRequest): Promise<MeshRunReport> => callInPage<MeshRunReport>(m.leader, PAGE, 'leaderGenerate', req);

/**
 * Runs `req` once undisturbed, then starts it again and resolves once 6 tokens are in: the moment a
 * test disturbs the ring. `tokens` polls the running generation's count.
 */
async function runTwiceThenDisturb(m: Mesh, req: GenerationRequest): Promise<{ undisturbed: MeshRunReport; running: Promise<MeshRunReport>; tokens: () => Promise<number> }> {
  const undisturbed = await run(m, req);
  const tokens = (): Promise<number> => callInPage<number>(m.leader, PAGE, 'leaderTokens');
  const running = run(m, req);
  await expect.poll(tokens, { timeout: 60_000, intervals: [50] }).toBeGreaterThanOrEqual(6);
  return { undisturbed, running, tokens };
}

function describeRun(label: string, r: MeshRunReport): void {
  const hops = r.hops.map((h) => `${h.from}->${h.to} ${h.rttP50Ms?.toFixed(1)}/${h.rttP95Ms?.toFixed(1)}`).join(', ');
  const busy = r.stageStats.map((s) => `${s.role}: ${(100 * s.busyFraction).toFixed(0)}%`).join(', ');
  console.log(`${label}: ${r.tokens.length} tokens (${r.recoveries} recoveries), tbt p50 ${r.timings.tbtP50Ms?.toFixed(1)} ms, ring trip p50 ${r.ringTripP50Ms?.toFixed(1)} ms; hop rtt p50/p95 ms: ${hops}; busy: ${busy}`);
}

test('2, 3 and 4 stages over 2 browser processes give the single tab\'s greedy tokens (demo-target, tiny-llama)', async ({ baseURL }) => {
  test.setTimeout(600_000);
  const ref = await tab(browsers[0], baseURL!);
  const demoReq = { prompt: 'In the beginning', maxNewTokens: 24, sampling: GREEDY, mode: 'pp' } as const;
  const single = await callInPage<GenerationReport>(ref, PAGE, 'single', { ...demoReq, modelUrl: DEMO, mode: 'single' } satisfies LocalRunRequest);
  expect(single.tokens.length).toBe(24);
  await ref.close();

  for (const stages of [2, 3, 4]) {
    const m = await mesh(baseURL!, DEMO, stages, { draftUrl: '/models/demo-draft/' });
    const r = await run(m, demoReq);
    describeRun(`demo-target, ${stages} stages`, r);
    expect(r.tokens).toEqual(single.tokens);
    expect(r.text).toBe(single.text);
    expect(r.stages).toHaveLength(stages);
    expect(r.stages[0]).toMatch(/^layers 0-\d+ \+ embedding$/);
    expect(r.stages[stages - 1]).toMatch(/ \+ head$/);
    expect(r.hops).toHaveLength(stages + 1);
    // Every stage computed every level (the final empty one may still be on its way).
    for (const s of r.stageStats) expect(s.packets).toBeGreaterThanOrEqual(r.metrics.levelsSent - 1);
    expect(r.stageStats).toHaveLength(stages);
    expect(r.recoveries).toBe(0);
    if (stages === 4) {
      // The scheduler's other modes over the same ring (the draft model runs in the leader tab).
      for (const mode of ['specpipe', 'tree'] as const) {
        const s = await run(m, { ...demoReq, mode, width: 2 });
        describeRun(`demo-target, ${stages} stages, ${mode} (hit rate ${s.metrics.hitRate?.toFixed(2)})`, s);
        expect(s.tokens, mode).toEqual(single.tokens);
      }
      // The draft ran in a Worker of its own (own GPU device), off the thread that drives the ring.
      const status = await callInPage<MeshStatus | null>(m.leader, PAGE, 'leaderStatusNow');
      expect(status!.log.join('\n')).toMatch(/draft model loaded in its own worker \(\d+ layers, /);
    }
    for (const p of [m.leader, ...m.stages]) await p.close();
  }

  for (const stages of [2, 3]) {
    const m = await mesh(baseURL!, TINY, stages);
    const r = await run(m, { promptIds: tiny.promptIds, maxNewTokens: tiny.greedyTokens.length, sampling: GREEDY, mode: 'pp' });
    describeRun(`tiny-llama, ${stages} stages`, r);
    expect(r.tokens).toEqual(tiny.greedyTokens);
    for (const p of [m.leader, ...m.stages]) await p.close();
  }
});

test('the leader tab can hold a stage too; a tab with little memory gets fewer layers', async ({ baseURL }) => {
  const room = `ring-hold-${Date.now().toString(36)}`;
  const leader = await tab(browsers[0], baseURL!);
  const other = await tab(browsers[1], baseURL!);
  // s1 joins the room first, so it is stage 1, which an equal split of 3 layers gives 2. But
  // tiny-llama's layer is 181760 bytes of weights + 74240 of KV (290 slots), the embedding 82 kB
  // more: 420 kB hold one layer.
  const joined = callInPage(other, PAGE, 'stageStart', { room, secret: SECRET, name: 's1', memoryBytes: 420_000 });
  await expect.poll(async () => (await callInPage<StageStatus | null>(other, PAGE, 'stageStatusNow'))?.phase).toBe('waiting');
  await callInPage(leader, PAGE, 'leaderStart', { room, secret: SECRET, stages: 2, modelUrl: TINY, name: 'leader', holdStage: true, split: 'equal' });
  expect(await joined).toHaveProperty('id');
  expect(await callInPage<Outcome>(leader, PAGE, 'leaderReady')).toEqual({ ok: true });
  const status = await callInPage<MeshStatus>(leader, PAGE, 'leaderStatusNow');
  expect(status.stages.map((s) => [s.name, s.role])).toEqual([
    ['s1', 'layers 0-0 + embedding'],
    ['leader (stage)', 'layers 1-2 + head'],
  ]);
  const r = await callInPage<MeshRunReport>(leader, PAGE, 'leaderGenerate', { promptIds: tiny.promptIds, maxNewTokens: 8, sampling: GREEDY, mode: 'pp' });
  expect(r.tokens).toEqual(tiny.greedyTokens.slice(0, 8));
});

test('a stage tab closed, then one that stops answering, mid-generation: the ring re-forms twice and the output is unchanged', async ({ baseURL }) => {
  test.setTimeout(300_000);
  const req = { prompt: 'In the beginning', maxNewTokens: 32, sampling: GREEDY, mode: 'pp' } as const;
  const m = await mesh(baseURL!, DEMO, 3, { hopDelayMs: 15 });
  const { undisturbed, running, tokens } = await runTwiceThenDisturb(m, req);
  const closedAt = Date.now();
  await m.stages[1].close();
  await expect.poll(tokens, { timeout: 60_000, intervals: [50] }).toBeGreaterThanOrEqual(14);
  console.log(`first recovery done within ${Date.now() - closedAt} ms of the tab closing`);
  const hungAt = Date.now();
  const hang = callInPage(m.stages[0], PAGE, 'stageBlock', 7000); // stage 1 stops answering for 7 s
  const r = await running;
  await hang;
  describeRun('after losing stages 2 and 1', r);
  console.log(`finished ${Date.now() - hungAt} ms after stage 1 stopped answering`);
  expect(r.tokens).toEqual(undisturbed.tokens);
  expect(r.recoveries).toBe(2);
  expect(r.stages).toEqual(['layers 0-7 + embedding + head']);
  // Every hop's link delays each message by 15 ms both ways: the stages took the leader's setting.
  for (const h of r.hops) expect(h.rttP50Ms ?? 0, `${h.from}->${h.to}`).toBeGreaterThanOrEqual(30);
  const log = (await callInPage<MeshStatus>(m.leader, PAGE, 'leaderStatusNow')).log.join('\n');
  expect(log).toContain(`s2 (${m.stageIds[1]}) lost`);
  // Noticed by the leader or by its neighbour, whichever link's silence timeout fires first.
  expect(log).toMatch(new RegExp(`s1 \\(${m.stageIds[0]}\\) lost.*timeout\\)?: ${m.stageIds[0]} did not answer for \\d+ ms`));
  expect(log).toMatch(/re-forming the ring with 2 stage\(s\)[\s\S]*re-forming the ring with 1 stage\(s\)/);
});

test('partial recovery: a stage tab closed mid-generation is replaced by a spare tab, which alone prefills the committed text; the other stages keep their layers and KV', async ({ baseURL }) => {
  test.setTimeout(300_000);
  const req = { prompt: 'In the beginning', maxNewTokens: 32, sampling: GREEDY, mode: 'pp' } as const;
  const m = await mesh(baseURL!, DEMO, 3, { hopDelayMs: 15 });
  // A fourth tab joins the room after the ring formed: a spare.
  const spare = await tab(browsers[1], baseURL!);
  const spareJoined = callInPage<{ id: string }>(spare, PAGE, 'stageStart', { room: m.room, secret: SECRET, name: 'spare' });
  await expect.poll(async () => (await callInPage<StageStatus | null>(spare, PAGE, 'stageStatusNow'))?.phase).toBe('waiting');
  const roles = (await callInPage<MeshStatus>(m.leader, PAGE, 'leaderStatusNow')).stages.map((s) => [s.name, s.role]);
  const { undisturbed, running } = await runTwiceThenDisturb(m, req);
  await m.stages[1].close();
  const r = await running;
  const spareId = (await spareJoined).id;
  describeRun('after stage 2 was replaced by a spare', r);
  expect(r.tokens).toEqual(undisturbed.tokens);
  expect(r.recoveries).toBe(1);
  const rec = r.recoveryLog[0];
  console.log(`recovery: ${JSON.stringify(rec)}`);
  // Stages take their ring places in the order they joined: find the lost one's.
  const lost = roles.findIndex(([name]) => name === 's2');
  expect(rec).toMatchObject({ tokensLost: 0, plan: `${roles[lost][1]} -> spare tab spare (${spareId})` });
  expect(rec.lost).toContain(`s2 (${m.stageIds[1]}) lost`);
  expect(rec.recoveryMs).toBeGreaterThan(0);
  // The stages left kept their layers; the spare took the lost ones.
  const after = roles.map(([name, role], i) => [i === lost ? 'spare' : name, role]);
  expect(r.ring.map((s) => [s.name, s.role])).toEqual(after);
  // Only the spare computed the committed text again; the others served it from their KV and hidden
  // states, computing at most the positions whose commit had not reached them yet.
  const keep = r.promptIds.length + rec.atToken - 1;
  expect(rec.stages.map((s) => [s.name, s.role])).toEqual(after);
  rec.stages.forEach((s, i) => {
    if (i === lost) expect(s).toMatchObject({ kept: 0, prefilled: keep });
    else {
      expect(s.kept + s.prefilled).toBe(keep);
      expect(s.prefilled).toBeLessThanOrEqual(3);
    }
  });
  // The stage tabs that stayed say so themselves.
  for (const p of [m.stages[0], m.stages[2]]) {
    expect((await callInPage<StageStatus>(p, PAGE, 'stageStatusNow')).message).toMatch(new RegExp(`^resumed: kept \\d+ of ${keep} committed positions, prefilled [0-3] \\(`));
  }
});

test('a stage whose GPU device is lost mid-generation leaves the ring like a closed tab; the output is unchanged', async ({ baseURL }) => {
  test.setTimeout(300_000);
  const req = { prompt: 'In the beginning', maxNewTokens: 24, sampling: GREEDY, mode: 'pp' } as const;
  // Stage 1 alone in browser 1 (stage 2 shares browser 0 with the leader, which holds no GPU work).
  const m = await mesh(baseURL!, DEMO, 2, { hopDelayMs: 15 });
  const { undisturbed, running } = await runTwiceThenDisturb(m, req);
  const cdp = await browsers[1].newBrowserCDPSession();
  await cdp.send('Browser.crashGpuProcess').catch(() => undefined);
  const r = await running;
  describeRun('after stage 1 lost its GPU device', r);
  expect(r.tokens).toEqual(undisturbed.tokens);
  expect(r.recoveries).toBe(1);
  expect(r.stages).toEqual(['layers 0-7 + embedding + head']);
  const stage = await callInPage<StageStatus>(m.stages[0], PAGE, 'stageStatusNow');
  expect(stage.phase).toBe('failed');
  const log = (await callInPage<MeshStatus>(m.leader, PAGE, 'leaderStatusNow')).log.join('\n');
  expect(log).toContain(`s1 (${m.stageIds[0]}) lost`);
});

test('a malformed message from a stage closes it with a clear error; a wrong secret is refused; a stage tab outlives its leader', async ({ baseURL }) => {
  const m = await mesh(baseURL!, TINY, 2);
  const before = await run(m, { promptIds: tiny.promptIds, maxNewTokens: 4, sampling: GREEDY, mode: 'pp' });
  expect(before.tokens).toEqual(tiny.greedyTokens.slice(0, 4));

  await callInPage(m.stages[0], PAGE, 'stageSendMalformed');
  await expect
    .poll(async () => (await callInPage<MeshStatus>(m.leader, PAGE, 'leaderStatusNow')).log.join('\n'), { timeout: 10_000 })
    .toMatch(new RegExp(`malformed message from ${m.stageIds[0]}: bad-version: protocol version ${PROTOCOL_VERSION + 1}, this build speaks version ${PROTOCOL_VERSION}`));
  await expect
    .poll(async () => (await callInPage<StageStatus>(m.stages[0], PAGE, 'stageStatusNow')).message, { timeout: 10_000 })
    .toMatch(/closed the link: protocol: malformed message/);
  // The leader carries on with the stage that is left.
  const after = await run(m, { promptIds: tiny.promptIds, maxNewTokens: 4, sampling: GREEDY, mode: 'pp' });
  expect(after.tokens).toEqual(before.tokens);
  expect(after.stages).toEqual(['layers 0-2 + embedding + head']);

  const intruder = await tab(browsers[1], baseURL!);
  const refused = await callInPage<{ error: string; code: string }>(intruder, PAGE, 'stageStart', { room: m.room, secret: 'wrong', name: 'intruder' });
  expect(refused).toEqual({ code: 'wrong-secret', error: `wrong secret for room "${m.room}"` });
  expect(await callInPage<StageStatus>(intruder, PAGE, 'stageStatusNow')).toMatchObject({ phase: 'failed', message: `wrong secret for room "${m.room}"` });
  const leader2 = await tab(browsers[1], baseURL!);
  await callInPage(leader2, PAGE, 'leaderStart', { room: m.room, secret: 'wrong', stages: 1, modelUrl: TINY });
  expect(await callInPage<Outcome>(leader2, PAGE, 'leaderReady')).toEqual({ error: `wrong secret for room "${m.room}"` });

  // The leader goes away: the stage tab says so and serves the next leader of the room.
  await m.leader.close();
  await expect
    .poll(async () => await callInPage<StageStatus>(m.stages[1], PAGE, 'stageStatusNow'), { timeout: 10_000 })
    .toMatchObject({ phase: 'leader-gone', message: expect.stringMatching(/^the leader left the room \(.*\); waiting for a new leader in this room$/) });
  const leader3 = await tab(browsers[0], baseURL!);
  await callInPage(leader3, PAGE, 'leaderStart', { room: m.room, secret: SECRET, stages: 1, modelUrl: TINY });
  expect(await callInPage<Outcome>(leader3, PAGE, 'leaderReady')).toEqual({ ok: true });
  const again = await callInPage<MeshRunReport>(leader3, PAGE, 'leaderGenerate', { promptIds: tiny.promptIds, maxNewTokens: 4, sampling: GREEDY, mode: 'pp' });
  expect(again.tokens).toEqual(before.tokens);
});
