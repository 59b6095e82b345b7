// `npm run soak [-- --minutes M --stages N]`: a mesh of headless tabs generating without a break
// while a chaos loop closes a random stage tab mid-generation and opens a new one (the next spare):
// every output is checked against single's tokens for its prompt, every recovery's time and lost
// tokens are recorded, and each tab's JS heap (after a forced GC) and GPU buffer bytes are sampled;
// a tab's memory must grow less than 5% from the first minute to the last. Prints a summary (--json:
// the summary as JSON), writes the full log (JSON) and a plot (HTML) under --out. Exit 1 when
// anything differs, is lost, grows or fails; 2 on a bad command line.
//
// Stage tabs that hang instead of closing, and Node stage hosts, are not part of the chaos yet.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CDPSession, Page } from '@playwright/test';
import { flag, num, parseArgs, rejectUnknown, str } from '../common/args.ts';
import { seededRandom } from '../common/numerics.ts';
import { errorMessage } from '../common/errors.ts';
import { startPageHost, type PageHost } from './page-host.ts';
import { formMesh, type Mesh } from './mesh-tabs.ts';
import { summarize, summaryText, soakHtml, type SoakLog, type SoakSummary } from './soak-report.ts';
import type { LocalRunRequest } from '../headless/local-run.ts';
import type { GenerationReport, GenerationRequest } from '../app/engine.ts';
import type { Mode } from '../speculative/scheduler.ts';

const KNOWN = ['minutes', 'stages', 'model', 'draft-model', 'mode', 'max-new-tokens', 'chaos-s', 'seed', 'out', 'json', 'sample-s'];
const LOCAL_RUN = '/src/headless/local-run.ts';
const MESH_PAGE = '/src/headless/mesh-page.ts';
const PROMPTS = ['In the beginning', 'The whale', 'And God said', 'It was the best of times'];

export interface SoakOptions {
  minutes: number;
  stages: number;
  model: string;
  draftModel: string;
  mode: Mode;
  maxNewTokens: number;
  /** A stage tab is closed every chaos[0]..chaos[1] seconds (uniformly at random), mid-generation. */
  chaosS: [number, number];
  seed: number;
  /** Memory is sampled every this many seconds. */
  sampleS: number;
  /** Progress lines (stderr). */
  log?: (line: string) => void;
}

/** Counts GPU buffer bytes created and not destroyed in this page (installed before the page's own code). */
function countGpuBuffers(): void {
  let bytes = 0;
  (globalThis as unknown as { __gpuBufferBytes: () => number }).__gpuBufferBytes = () => bytes;
  const proto = (globalThis as unknown as { GPUDevice?: { prototype: { createBuffer(d: { size: number }): { destroy(): void } } } }).GPUDevice?.prototype;
  if (!proto) return;
  const create = proto.createBuffer;
  proto.createBuffer = function (this: unknown, d: { size: number }) {
    const b = create.call(this, d);
    bytes += d.size;
    const destroy = b.destroy.bind(b);
    let gone = false;
    b.destroy = () => {
      if (!gone) bytes -= d.size;
      gone = true;
      destroy();
    };
    return b;
  };
}

/** One tab's JS heap after a GC (CDP) and its GPU buffer count. */
async function sampleTab(page: Page, cdp: CDPSession): Promise<{ heapBytes: number; gpuBytes: number }> {
  await cdp.send('HeapProfiler.collectGarbage');
  const { metrics } = await cdp.send('Performance.getMetrics');
  const heapBytes = metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? 0;
  const gpuBytes = await page.evaluate(() => (globalThis as unknown as { __gpuBufferBytes?: () => number }).__gpuBufferBytes?.() ?? 0);
  return { heapBytes, gpuBytes };
}

/** A stage tab's phase (null once it is closed). */
function stagePhase(page: Page): Promise<string | null> {
  return page.evaluate(async (mod) => ((await import(/* @vite-ignore */ mod)) as typeof import('../headless/mesh-page.ts')).stageStatusNow()?.phase ?? null, MESH_PAGE).catch(() => null);
}

/** Runs the soak; resolves with its log and summary (the caller prints and writes them). */
export async function runSoak(o: SoakOptions): Promise<{ log: SoakLog; summary: SoakSummary; totalMs: number }> {
  const say = o.log ?? (() => undefined);
  const rand = seededRandom(o.seed);
  const sampling = { temperature: 0.8, topK: 0, topP: 0.95, seed: 1 };
  const log: SoakLog = { startedAt: new Date().toISOString(), minutes: o.minutes, stages: o.stages, mode: o.mode, generations: [], chaos: [], memory: [] };
  const host: PageHost = await startPageHost({ models: [o.model, o.draftModel], browsers: 2, quiet: true });
  let mesh: Mesh | null = null;
  try {
    // Single's tokens for every prompt: the reference each mesh output must equal.
    const refPage = await host.newPage(0);
    await refPage.goto(`${host.baseUrl}/src/headless/page.html`);
    const refs: number[][] = [];
    for (const prompt of PROMPTS) {
      const req: LocalRunRequest = { modelUrl: host.modelUrls[0], prompt, maxNewTokens: o.maxNewTokens, sampling, mode: 'single', stages: 1 };
      const r = await refPage.evaluate(async ([mod, q]) => ((await import(/* @vite-ignore */ mod)) as typeof import('../headless/local-run.ts')).runLocal(q), [LOCAL_RUN, req] as const);
      refs.push((r as GenerationReport).tokens);
    }
    await refPage.close();
    say(`references: ${refs.length} prompts x ${o.maxNewTokens} tokens (single)`);

    const leader = await host.newPage(0);
    await leader.addInitScript(countGpuBuffers);
    await leader.goto(`${host.baseUrl}/src/headless/page.html`);
    const m = await formMesh(host, leader, { stages: o.stages, modelUrl: host.modelUrls[0], draftUrl: host.modelUrls[1], instrument: countGpuBuffers });
    mesh = m;
    let spares = 0;
    const names = new Map<Page, string>([[leader, 'leader'], ...m.stages.map((p, i): [Page, string] => [p, `stage tab ${i + 1}`])]);
    const addSpare = async (): Promise<void> => {
      const name = `spare ${++spares}`;
      names.set(await m.addStageTab(name, spares % 2), name);
      log.chaos.push({ atMs: performance.now() - t0, what: `${name} joined` });
    };
    // One generation first: the tabs' code and caches warm up before the memory's first minute.
    const warm = await m.generate({ prompt: PROMPTS[0], maxNewTokens: o.maxNewTokens, sampling, mode: o.mode, width: 2 });
    if (warm.tokens.join() !== refs[0].join()) throw new Error('the warm-up generation differs from single');
    const t0 = performance.now();
    await addSpare();
    say(`mesh of ${o.stages} stage tabs and a spare formed; soaking for ${o.minutes} min`);
    const endAt = t0 + o.minutes * 60_000;
    let stopped = false;
    const over = (): boolean => stopped || performance.now() >= endAt;
    const cdps = new Map<Page, CDPSession>();
    const sampler = (async () => {
      while (!over()) {
        for (const [page, tab] of names) {
          if (page.isClosed()) continue;
          try {
            let cdp = cdps.get(page);
            if (!cdp) {
              cdp = await page.context().newCDPSession(page);
              await cdp.send('Performance.enable');
              cdps.set(page, cdp);
            }
            const inRing = page === leader || (await stagePhase(page)) === 'ready';
            log.memory.push({ tab, atMs: performance.now() - t0, inRing, ...(await sampleTab(page, cdp)) });
          } catch {
            // closed by the chaos loop meanwhile
          }
        }
        await new Promise((r) => setTimeout(r, o.sampleS * 1000));
      }
    })();
    let running = false;
    const chaos = (async () => {
      for (;;) {
        await new Promise((r) => setTimeout(r, 1000 * (o.chaosS[0] + rand() * (o.chaosS[1] - o.chaosS[0]))));
        // Mid-generation, a stage tab in the ring (ready), never the spare waiting.
        while (!running && !stopped && performance.now() < endAt - 15_000) await new Promise((r) => setTimeout(r, 100));
        if (stopped || performance.now() >= endAt - 15_000) return;
        const live = [];
        for (const p of m.stages) if (!p.isClosed() && (await stagePhase(p)) === 'ready') live.push(p);
        if (live.length < 2) continue;
        const victim = live[Math.floor(rand() * live.length)];
        const name = names.get(victim) ?? '?';
        await victim.close();
        log.chaos.push({ atMs: performance.now() - t0, what: `closed ${name}` });
        say(`chaos: closed ${name}`);
        // A spare that cannot open is recorded; the next close may then merge layers instead.
        await addSpare().catch((e: unknown) => {
          log.chaos.push({ atMs: performance.now() - t0, what: `a spare could not join: ${errorMessage(e)}` });
          say(`chaos: a spare could not join: ${errorMessage(e)}`);
        });
      }
    })();
    // Three failures in a row: the mesh is down (a failed session stays failed), the soak stops.
    let failures = 0;
    for (let i = 0; performance.now() < endAt && failures < 3; i++) {
      const p = i % PROMPTS.length;
      const req: GenerationRequest = { prompt: PROMPTS[p], maxNewTokens: o.maxNewTokens, sampling, mode: o.mode, width: 2 };
      running = true;
      const at = performance.now() - t0;
      try {
        const r = await m.generate(req);
        const same = r.tokens.length === refs[p].length && r.tokens.every((t, k) => t === refs[p][k]);
        log.generations.push({
          atMs: at, prompt: p, tokens: r.tokens.length, same,
          recoveries: r.recoveryLog.map((x) => ({ recoveryMs: x.recoveryMs, tokensLost: x.tokensLost, plan: x.plan, prefilled: x.stages.map((s) => s.prefilled) })),
        });
        failures = 0;
        if (!same || r.recoveryLog.length) say(`generation ${i + 1}: ${same ? 'same as single' : 'DIFFERS from single'}; ${r.recoveryLog.map((x) => `recovered in ${x.recoveryMs?.toFixed(0)} ms, ${x.tokensLost} lost, prefilled ${x.stages.map((s) => s.prefilled).join('/')}`).join('; ')}`);
      } catch (e) {
        log.generations.push({ atMs: at, prompt: p, tokens: 0, same: false, recoveries: [], error: errorMessage(e) });
        say(`generation ${i + 1} failed: ${errorMessage(e).split('\n')[0]}`);
        if (++failures === 3) {
          log.chaos.push({ atMs: performance.now() - t0, what: 'three generations failed in a row: the soak stopped' });
          say('three generations failed in a row: the mesh is down, the soak stops');
        }
        await new Promise((r) => setTimeout(r, 1000));
      } finally {
        running = false;
      }
    }
    stopped = true;
    await Promise.all([sampler, chaos]);
    const totalMs = performance.now() - t0;
    return { log, summary: summarize(log), totalMs };
  } finally {
    await mesh?.close();
    await host.close();
  }
}

async function main(): Promise<void> {
  let o: SoakOptions;
  let out: string;
  let json: boolean;
  try {
    const args = parseArgs(process.argv.slice(2));
    rejectUnknown(args, KNOWN);
    const [a, b] = str(args, 'chaos-s', '20:40').split(':').map(Number);
    if (!(a > 0 && b >= a)) throw new Error('--chaos-s A:B needs 0 < A <= B seconds');
    const mode = str(args, 'mode', 'specpipe') as Mode;
    if (!['pp', 'specpipe', 'tree'].includes(mode)) throw new Error('--mode must be pp, specpipe or tree');
    o = {
      minutes: num(args, 'minutes', 20), stages: num(args, 'stages', 3), model: str(args, 'model', 'public/models/demo-target'), draftModel: str(args, 'draft-model', 'public/models/demo-draft'),
      mode, maxNewTokens: num(args, 'max-new-tokens', 32), chaosS: [a, b], seed: num(args, 'seed', 1), sampleS: num(args, 'sample-s', 10), log: (l) => process.stderr.write(`[soak] ${l}\n`),
    };
    if (!(o.minutes > 0) || !(o.stages >= 2)) throw new Error('--minutes must be > 0 and --stages >= 2 (a stage is closed and replaced)');
    out = str(args, 'out', join('bench-results', `soak-${new Date().toISOString().replace(/[:.]/g, '-')}`));
    json = flag(args, 'json');
  } catch (e) {
    process.stderr.write(`${errorMessage(e)}\n`);
    process.exit(2);
  }
  const { log, summary, totalMs } = await runSoak(o);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'soak.json'), JSON.stringify({ ...log, summary }, null, 1));
  writeFileSync(join(out, 'soak.html'), soakHtml(log, summary, totalMs));
  process.stdout.write(json ? `${JSON.stringify({ ...summary, out })}\n` : `${summaryText(log, summary)}\n(log and plot in ${out})\n`);
  process.exit(summary.ok ? 0 : 1);
}

if (process.argv[1]?.endsWith('soak.ts')) {
  main().catch((e: unknown) => {
    process.stderr.write(`soak failed: ${errorMessage(e)}\n`);
    process.exit(1);
  });
}
