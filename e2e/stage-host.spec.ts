// Stages without a browser: a leader tab in headless Chromium plus 2 Node stage hosts
// (`npm run stage`, src/cli/stage-host.ts: Dawn on SwiftShader, node-datachannel, the Vite server's
// signalling) give the single tab's tokens in pp mode (greedy and seeded) and in specpipe mode with
// the draft (greedy and seeded); a stage host killed (SIGKILL) mid-generation is replaced by a stage tab waiting in the
// room, with identical output; Ctrl-C (SIGINT) ends a host cleanly. Every host is its own process
// group, killed as a whole in afterEach, and the test checks no process of it is left.
import { test, expect, chromium, type Browser, type Page } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findChromium, chromiumArgs } from '../src/cli/browser.ts';
import { openHarness, callInPage } from './harness.ts';
import type { Outcome } from './pages/ring.ts';
import type { MeshRunReport, MeshStatus } from '../src/app/mesh-types.ts';
import type { GenerationReport, GenerationRequest } from '../src/app/engine.ts';
import type { LocalRunRequest } from '../src/headless/local-run.ts';
import type { StageStatus } from '../src/app/stage-node.ts';
import { RING_PAGE as PAGE, GREEDY, DEMO, DRAFT, TINY, tiny } from './mesh-fixtures.ts';
import { liveInGroup } from '../tests/support/process-group.ts';

const SEEDED = { temperature: 0.9, topK: 20, topP: 0.95, seed: 7 };
const SECRET = 'host secret';

interface Host {
  name: string;
  proc: ChildProcess;
  out: string[];
  exited: Promise<number | null>;
}

let browser: Browser;
let pages: Page[] = [];
let hosts: Host[] = [];
let cacheDir = '';

test.beforeAll(async () => {
  browser = await chromium.launch({ executablePath: findChromium(), args: chromiumArgs });
  cacheDir = mkdtempSync(join(tmpdir(), 'stage-host-cache-'));
});
test.afterAll(async () => {
  await browser.close();
  rmSync(cacheDir, { recursive: true, force: true });
});
// Whatever way this worker ends, no stage host outlives it.
process.on('exit', () => {
  for (const h of hosts) killGroup(h, 'SIGKILL');
});
test.afterEach(async () => {
  for (const p of pages) await p.close().catch(() => undefined);
  pages = [];
  for (const h of hosts) killGroup(h, 'SIGKILL');
  for (const h of hosts) await expect.poll(() => liveInGroup(h.proc.pid!), { timeout: 10_000 }).toEqual([]);
  hosts = [];
});

function killGroup(h: Host, signal: NodeJS.Signals): void {
  try {
    process.kill(-h.proc.pid!, signal);
  } catch {
    // already gone
  }
}

/** `npm run stage` as its own process group (with --swiftshader it restarts itself once for SwiftShader's Vulkan loader). */
function startHost(baseURL: string, room: string, name: string, extra: string[] = ['--swiftshader'], env: Record<string, string> = {}): Host {
  const args = ['--import', 'tsx', 'src/cli/stage-host.ts', '--join', `${baseURL}/?room=${room}`, '--secret', SECRET, '--name', name, '--cache-dir', cacheDir, ...extra];
  const proc = spawn(process.execPath, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const out: string[] = [];
  const keep = (b: Buffer): void => {
    for (const line of b.toString().split('\n')) if (line.trim()) out.push(line);
    if (process.env.DEBUG_HOSTS) process.stdout.write(`[${name}] ${b.toString()}`);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const host = { name, proc, out, exited: new Promise<number | null>((r) => proc.on('exit', (code) => r(code))) };
  hosts.push(host);
  return host;
}

async function joined(h: Host): Promise<void> {
  await expect.poll(() => h.out.join('\n'), { timeout: 120_000, message: `${h.name} joins the room` }).toMatch(/joined room "[^"]+" as \S+ /);
}

async function tab(baseURL: string): Promise<Page> {
  const page = await (await browser.newContext({ baseURL })).newPage();
  pages.push(page);
  await openHarness(page);
  return page;
}

/** A leader tab for `stages` Node stage hosts that have joined `room`. */
async function leader(baseURL: string, room: string, modelUrl: string, extra: { draftUrl?: string } = {}): Promise<Page> {
  const page = await tab(baseURL);
  // Dawn builds a host's pipelines synchronously: on a loaded 2-core machine a host can be silent for
  // several seconds right after loading its weights, so the leader waits 15 s before it gives up on one.
  await callInPage(page, PAGE, 'leaderStart', { room, secret: SECRET, stages: 2, modelUrl, name: 'leader', timeoutMs: 15_000, ...extra });
  const ready = await callInPage<Outcome>(page, PAGE, 'leaderReady');
  if (!('ok' in ready)) for (const h of hosts) console.log(`${h.name}:\n${h.out.join('\n')}`);
  expect(ready).toEqual({ ok: true });
  return page;
}

const run = (page: Page, req: GenerationRequest): Promise<MeshRunReport> => callInPage<MeshRunReport>(page, PAGE, 'leaderGenerate', req);

async function single(baseURL: string, req: LocalRunRequest): Promise<GenerationReport> {
  const ref = await tab(baseURL);
  const r = await callInPage<GenerationReport>(ref, PAGE, 'single', req);
  await ref.close();
  return r;
}

function describeRun(label: string, r: MeshRunReport, ms: number): void {
  const hops = r.hops.map((h) => `${h.from}->${h.to} ${h.rttP50Ms?.toFixed(1)}`).join(', ');
  console.log(`${label}: ${r.tokens.length} tokens in ${(ms / 1000).toFixed(1)} s (${r.recoveries} recoveries), tbt p50 ${r.timings.tbtP50Ms?.toFixed(0)} ms; hop rtt p50 ms: ${hops}`);
}

test('2 Node stage hosts give single\'s tokens (tiny-llama pp greedy and seeded); Ctrl-C ends a host cleanly', async ({ baseURL }) => {
  test.setTimeout(600_000);
  const seededRef = await single(baseURL!, { modelUrl: TINY, mode: 'single', promptIds: tiny.promptIds, maxNewTokens: 12, sampling: SEEDED });
  const room = `hosts-tiny-${Date.now().toString(36)}`;
  const t0 = Date.now();
  const [h1, h2] = [startHost(baseURL!, room, 'n1', ['--swiftshader', '--memory-gb', '1']), startHost(baseURL!, room, 'n2')];
  await Promise.all([joined(h1), joined(h2)]);
  console.log(`2 stage hosts joined in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const page = await leader(baseURL!, room, TINY);
  const status = await callInPage<MeshStatus>(page, PAGE, 'leaderStatusNow');
  expect(status.stages.map((s) => s.name).sort()).toEqual(['n1', 'n2']);
  for (const s of status.stages) expect(s.device, s.name).toMatch(/swiftshader/i);
  for (const h of [h1, h2]) expect(h.out.join('\n'), h.name).toMatch(/loading layers .*\(100%\)/);

  let t = Date.now();
  const greedy = await run(page, { promptIds: tiny.promptIds, maxNewTokens: tiny.greedyTokens.length, sampling: GREEDY, mode: 'pp' });
  describeRun('tiny-llama, 2 Node stage hosts, pp greedy', greedy, Date.now() - t);
  expect(greedy.tokens).toEqual(tiny.greedyTokens);
  expect(greedy.stages).toHaveLength(2);
  t = Date.now();
  const seeded = await run(page, { promptIds: tiny.promptIds, maxNewTokens: 12, sampling: SEEDED, mode: 'pp' });
  describeRun('tiny-llama, 2 Node stage hosts, pp seeded', seeded, Date.now() - t);
  expect(seeded.tokens).toEqual(seededRef.tokens);
  expect(readdirSync(cacheDir).filter((f) => f.endsWith('.bin')).length).toBeGreaterThan(0); // weights cached on disk

  // Ctrl-C in a terminal signals the whole process group.
  killGroup(h1, 'SIGINT');
  expect(await h1.exited).toBe(0);
  expect(h1.out.join('\n')).toContain('left the room: stage host stopped (SIGINT)');
  expect(liveInGroup(h1.proc.pid!)).toEqual([]);
});

test('2 Node stage hosts: demo-target pp and specpipe with the draft (greedy, specpipe also seeded) give single\'s tokens; a host killed mid-generation is replaced by a stage tab', async ({ baseURL }) => {
  test.setTimeout(600_000);
  const req = { prompt: 'In the beginning', maxNewTokens: 40, sampling: GREEDY } as const;
  const ref = await single(baseURL!, { ...req, modelUrl: DEMO, mode: 'single' });
  expect(ref.tokens).toHaveLength(40);
  const seededReq = { prompt: 'In the beginning', maxNewTokens: 24, sampling: SEEDED } as const;
  const seededRef = await single(baseURL!, { ...seededReq, modelUrl: DEMO, mode: 'single' });
  const room = `hosts-demo-${Date.now().toString(36)}`;
  const [h1, h2] = [startHost(baseURL!, room, 'n1'), startHost(baseURL!, room, 'n2')];
  await Promise.all([joined(h1), joined(h2)]);
  const page = await leader(baseURL!, room, DEMO, { draftUrl: DRAFT });
  for (const mode of ['pp', 'specpipe'] as const) {
    const t = Date.now();
    const r = await run(page, { ...req, mode });
    describeRun(`demo-target, 2 Node stage hosts, ${mode}`, r, Date.now() - t);
    expect(r.tokens, mode).toEqual(ref.tokens);
    expect(r.recoveries).toBe(0);
  }
  const t0 = Date.now();
  const seeded = await run(page, { ...seededReq, mode: 'specpipe' });
  describeRun('demo-target, 2 Node stage hosts, specpipe seeded', seeded, Date.now() - t0);
  expect(seeded.tokens).toEqual(seededRef.tokens);

  // A stage tab waits in the room as a spare; the leader takes it when n2 dies.
  // (stageStart resolves once the tab is in a ring.)
  const spare = await tab(baseURL!);
  const spareJoined = callInPage(spare, PAGE, 'stageStart', { room, secret: SECRET, name: 'tab' });
  await expect.poll(async () => (await callInPage<StageStatus | null>(spare, PAGE, 'stageStatusNow'))?.phase).toBe('waiting');
  const tokens = (): Promise<number> => callInPage<number>(page, PAGE, 'leaderTokens');
  const t = Date.now();
  const running = run(page, { ...req, mode: 'pp' });
  await expect.poll(tokens, { timeout: 120_000, intervals: [50] }).toBeGreaterThanOrEqual(4);
  killGroup(h2, 'SIGKILL');
  const r = await running;
  describeRun('demo-target, n2 killed mid-generation', r, Date.now() - t);
  expect(r.tokens).toEqual(ref.tokens);
  expect(r.recoveries).toBe(1);
  expect(r.stages).toHaveLength(2);
  expect(await spareJoined).toHaveProperty('id');
  const status = await callInPage<MeshStatus>(page, PAGE, 'leaderStatusNow');
  expect(status.stages.map((s) => s.name).sort()).toEqual(['n1', 'tab']);
  expect(status.log.join('\n')).toMatch(/n2 \(\S+\) lost/);
  expect(liveInGroup(h2.proc.pid!)).toEqual([]);
});

test('without a GPU adapter a stage host says so and exits 1; Ctrl-C while it waits for a leader exits 0', async ({ baseURL }) => {
  test.setTimeout(120_000);
  const room = `hosts-none-${Date.now().toString(36)}`;
  const none = startHost(baseURL!, room, 'none', [], { VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' });
  const waiting = startHost(baseURL!, room, 'waiting');
  expect(await none.exited).toBe(1);
  expect(none.out.join('\n')).toContain('found no usable GPU adapter');
  expect(none.out.join('\n')).toContain('pass --swiftshader');
  await expect.poll(() => waiting.out.join('\n'), { timeout: 90_000 }).toContain('[waiting] waiting for the leader to form the ring');
  killGroup(waiting, 'SIGINT');
  expect(await waiting.exited).toBe(0);
  expect(waiting.out.join('\n')).toContain('stopped (SIGINT) before a ring formed');
});
