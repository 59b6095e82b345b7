// npm run bench -- [--stages 2,4,8] [--modes single,pp,tree,specpipe] [--hop-delay-ms 0,10,30]
//   [--tokens 128] [--prompts bench/prompts.txt] [--width 2] [--depth 4] [--draft model|ngram]
//   [--browsers 2] [--local] [--out bench-results] [--model DIR_OR_URL --draft-model DIR_OR_URL]
//   [--temperature T --top-k K --top-p P --seed S]
// Runs every mode on the same prompts for every stage count and hop delay in headless Chromium
// (real WebGPU): a leader tab plus one tab per stage over WebRTC (--local: every stage in one tab),
// checks each mode's tokens against `single`, and writes bench-results.json + bench-report.html.
import { cpus, loadavg } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs, str, num, numList, flag, rejectUnknown } from '../common/args.ts';
import { startPageHost, type PageHost } from './page-host.ts';
import { formMesh } from './mesh-tabs.ts';
import { SAMPLING_ARGS, samplingFromArgs } from './sampling-args.ts';
import { checkLossless, conditionsText, formatTable, htmlReport, meshRun, progressBar, readPrompts, summarize, type BenchRecord, type BenchResults } from './bench-results.ts';
import type { BenchPageResult, BenchRequest, BenchRun } from '../headless/bench-run.ts';
import { MODES, type DraftKind } from '../app/modes.ts';
import type { Mode } from '../speculative/scheduler.ts';
import { errorMessage } from '../common/errors.ts';

const KNOWN = ['stages', 'modes', 'hop-delay-ms', 'tokens', 'prompts', 'width', 'depth', 'draft', 'out', 'model', 'draft-model', 'browsers', 'local', ...SAMPLING_ARGS];

function modesOf(v: string): Mode[] {
  const modes = v.split(',').map((s) => s.trim()) as Mode[];
  for (const m of modes) if (!MODES.includes(m)) throw new Error(`--modes: "${m}" is not one of ${MODES.join(', ')}`);
  return modes;
}

type Base = Omit<BenchRequest, 'stages' | 'modes' | 'modelUrl' | 'draftUrl'>;

/** Runs `modes` with every stage in one tab (single: one stage). */
async function runInOneTab(host: PageHost, base: Base, stages: number, modes: Mode[], tick: (label: string) => void): Promise<{ adapter: string; runs: BenchRun[] }> {
  const page = await host.newPage();
  try {
    await page.exposeFunction('__specpipeBenchProgress', tick);
    await page.goto(`${host.baseUrl}/src/headless/page.html`);
    const req: BenchRequest = { ...base, modelUrl: host.modelUrls[0], draftUrl: host.modelUrls[1], stages, modes };
    return (await page.evaluate(async (r) => {
      const path = '/src/headless/bench-run.ts';
      const m = (await import(/* @vite-ignore */ path)) as typeof import('../headless/bench-run.ts');
      return m.benchLocal(r);
    }, req)) as BenchPageResult;
  } finally {
    await page.close();
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  rejectUnknown(args, KNOWN);
  const stageCounts = numList(args, 'stages') ?? [2, 4, 8];
  const modes = modesOf(str(args, 'modes', MODES.join(',')));
  const local = flag(args, 'local');
  const hopDelays = numList(args, 'hop-delay-ms') ?? [0];
  const draft = str(args, 'draft', 'model') as DraftKind;
  if (draft !== 'model' && draft !== 'ngram') throw new Error('--draft must be model or ngram');
  const prompts = readPrompts(str(args, 'prompts', 'bench/prompts.txt'));
  const outDir = resolve(str(args, 'out', 'bench-results'));
  const browsers = num(args, 'browsers', 2);
  const base: Base = { tokens: num(args, 'tokens', 128), width: num(args, 'width', 2), depth: num(args, 'depth', 4), draft, sampling: samplingFromArgs(args), prompts };

  const notes = [
    'All tabs run on this one machine: they share its CPU cores and its (software) GPU, so stages that would run in parallel on separate laptops take turns here; compare "step ms" and "stage busy" to tell compute from waiting.',
    local
      ? 'Local stages (--local): every stage of a run in ONE tab, no network; pipelining cannot overlap stages.'
      : `Mesh: a leader tab (prompt, token tree, draft model) plus one tab per stage, spread over ${browsers} Chromium processes, linked over WebRTC on loopback; "single" runs all layers in one tab.`,
  ];
  const hops = local ? [0] : hopDelays;
  if (local && hopDelays.some((h) => h !== 0)) notes.push(`Hop delays ${hopDelays.filter((h) => h !== 0).join(', ')} ms skipped: a hop delay exists only in the mesh transport.`);
  for (const n of notes) process.stderr.write(`bench: ${n}\n`);

  // Other work on the machine slows every tab: record how busy it was.
  const loadAtStart = loadavg()[0];
  const otherModes = modes.filter((m) => m !== 'single');
  const total = (modes.includes('single') ? prompts.length : 0) + stageCounts.length * hops.length * otherModes.length * prompts.length;
  let done = 0;
  const tick = (label: string): void => {
    if (label !== 'start') done++;
    const bar = progressBar(done, total, label);
    process.stderr.write(process.stderr.isTTY ? `\r\x1b[2K${bar}` : `${bar}\n`);
  };

  const host = await startPageHost({ models: [str(args, 'model', 'public/models/demo-target'), str(args, 'draft-model', 'public/models/demo-draft')], browsers: local ? 1 : browsers });
  const records: BenchRecord[] = [];
  const failures: string[] = [];
  let adapter = '';
  try {
    tick('start');
    if (modes.includes('single')) {
      const res = await runInOneTab(host, base, 1, ['single'], tick);
      adapter = res.adapter;
      for (const run of res.runs) records.push({ ...run, transport: local ? 'local' : 'mesh', hopDelayMs: 0, lossless: null });
    }
    for (const stages of stageCounts) {
      if (local) {
        const res = await runInOneTab(host, base, stages, otherModes, tick);
        adapter = res.adapter;
        for (const run of res.runs) records.push({ ...run, transport: 'local', hopDelayMs: 0, lossless: null });
        continue;
      }
      for (const hopDelayMs of hops) {
        // A configuration that fails (a tab lost, a load error) is reported; the others still run.
        const leader = await host.newPage(0);
        try {
          await leader.goto(`${host.baseUrl}/src/headless/page.html`);
          const mesh = await formMesh(host, leader, { stages, modelUrl: host.modelUrls[0], draftUrl: host.modelUrls[1], hopDelayMs });
          try {
            for (const mode of otherModes) {
              for (const [i, prompt] of prompts.entries()) {
                const r = await mesh.generate({ prompt, maxNewTokens: base.tokens, sampling: base.sampling, mode, draft: base.draft, width: base.width, depth: base.depth });
                adapter = r.adapter;
                records.push({ ...meshRun(r, mode, stages, i), transport: 'mesh', hopDelayMs, lossless: null });
                tick(`${mode} x${stages} hop ${hopDelayMs} ms prompt ${i + 1}`);
              }
            }
          } finally {
            await mesh.close();
          }
        } catch (e) {
          failures.push(`${stages} stages, hop delay ${hopDelayMs} ms: ${errorMessage(e)}`);
          process.stderr.write(`\nbench: FAILED ${failures[failures.length - 1]}\n`);
          await leader.close().catch(() => undefined);
        }
      }
    }
  } finally {
    await host.close();
  }
  if (process.stderr.isTTY) process.stderr.write('\n');

  notes.push(`Load average (1 min) of the machine: ${loadAtStart.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the end (${cpus().length} cores).`);
  // Single is the reference for both transports: it runs in one tab either way.
  const mismatches = checkLossless(records);
  const results: BenchResults = {
    createdAt: new Date().toISOString(),
    conditions: {
      adapter,
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      placement: local ? 'local: all stages of a run in one headless Chromium tab' : `mesh: leader tab + one tab per stage over ${browsers} headless Chromium processes (WebRTC, loopback)`,
      notes,
    },
    settings: { stages: stageCounts, modes, hopDelaysMs: hops, tokens: base.tokens, width: base.width, depth: base.depth, draft, prompts },
    records,
    mismatches,
    failures,
  };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'bench-results.json'), JSON.stringify(results, null, 1));
  writeFileSync(join(outDir, 'bench-report.html'), htmlReport(results));
  process.stdout.write(`${conditionsText(results.conditions)}\n\n${formatTable(summarize(records))}\n\n`);
  process.stdout.write(`Wrote ${join(outDir, 'bench-results.json')} and ${join(outDir, 'bench-report.html')}\n`);
  if (failures.length) {
    process.stderr.write(`\n*** ${failures.length} CONFIGURATION(S) FAILED (no numbers for them) ***\n${failures.map((f) => `  ${f}`).join('\n')}\n`);
    process.exitCode = 1;
  }
  if (mismatches.length) {
    process.stderr.write(`\n*** LOSSLESS CHECK FAILED: ${mismatches.length} run(s) differ from single ***\n${mismatches.map((m) => `  ${m}`).join('\n')}\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write('Lossless: every mode produced exactly the tokens of single on every prompt.\n');
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`\nbench: ${errorMessage(e)}\n`);
  process.exit(1);
});
