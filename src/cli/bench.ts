// npm run bench -- [--stages 2,4,8] [--modes single,pp,tree,specpipe] [--hop-delay-ms 0,10,30]
//   [--stage-ms 0,50[:B]] [--draft-ms 0,10[:B]]
//   [--tokens 128] [--prompts bench/prompts.txt] [--width 1,2,3] [--depth 4,8] [--branch-ratio R] [--draft model|ngram]
//   [--browsers 2] [--stage-hosts tabs|node|mixed] [--backend auto|webgpu|wasm] [--local] [--out bench-results] [--model DIR_OR_URL --draft-model DIR_OR_URL]
//   [--temperature T --top-k K --top-p P --seed S]
// Runs every mode on the same prompts for every stage count, hop delay and emulated cost in headless
// Chromium (real WebGPU): a leader tab plus one tab per stage over WebRTC (--local: every stage in
// one tab). `single` always runs (it is added when --modes leaves it out): every other mode's tokens
// are checked against it. --stage-ms A[:B] emulates dedicated devices (each stage's level takes at
// least A + B*rows ms), --draft-ms A[:B] the draft's (0: real compute). specpipe runs once per width W
// (speculating up to S deep), tree once per width and depth. Writes bench-results.json +
// bench-report.html; exits non-zero when a configuration failed, a mode's tokens differ from
// single's, or nothing was compared.
import { cpus, loadavg } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs, str, num, numList, flag, rejectUnknown } from '../common/args.ts';
import { startPageHost, type PageHost } from './page-host.ts';
import { formMesh } from './mesh-tabs.ts';
import { parseStageHosts, stageHostsText } from './stage-processes.ts';
import { parseBackend, type BackendChoice } from '../pipeline/backend.ts';
import { SAMPLING_ARGS, samplingFromArgs } from './sampling-args.ts';
import { TABLE_LEGEND, benchRecord, checkLossless, comparedRuns, conditionsText, formatTable, htmlReport, overran, progressBar, readPrompts, summarize, type BenchRecord, type BenchResults, type Transport } from './bench-results.ts';
import type { BenchPageResult, BenchRequest } from '../headless/bench-run.ts';
import { DEFAULT_BRANCH_RATIO, MAX_DEPTH, MAX_WIDTH, MODES, modeVariants, variantLabel, type DraftKind, type ModeVariant } from '../app/modes.ts';
import type { Mode } from '../speculative/scheduler.ts';
import { errorMessage } from '../common/errors.ts';
import { MAX_OVERRUN_SHARE, costText, emulationText, type DeviceEmulation } from '../common/device-emulation.ts';
import { EMULATION_ARGS, emulationsFromArgs } from './emulation-args.ts';

const KNOWN = ['stages', 'modes', 'hop-delay-ms', ...EMULATION_ARGS, 'tokens', 'prompts', 'width', 'depth', 'branch-ratio', 'draft', 'out', 'model', 'draft-model', 'browsers', 'stage-hosts', 'backend', 'local', ...SAMPLING_ARGS];

function modesOf(v: string): Mode[] {
  const modes = v.split(',').map((s) => s.trim()) as Mode[];
  for (const m of modes) if (!MODES.includes(m)) throw new Error(`--modes: "${m}" is not one of ${MODES.join(', ')}`);
  return modes;
}

type Base = Omit<BenchRequest, 'stages' | 'variants' | 'modelUrl' | 'draftUrl' | 'emulation'>;

/** Runs `modes` with every stage in one tab (single: one stage). */
async function runInOneTab(host: PageHost, base: Base, emulation: DeviceEmulation, stages: number, variants: ModeVariant[], tick: (label: string) => void): Promise<BenchPageResult> {
  const page = await host.newPage();
  try {
    await page.exposeFunction('__specpipeBenchProgress', tick);
    await page.goto(`${host.baseUrl}/src/headless/page.html`);
    const req: BenchRequest = { ...base, modelUrl: host.modelUrls[0], draftUrl: host.modelUrls[1], stages, variants, emulation };
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
  const stageHosts = parseStageHosts(str(args, 'stage-hosts', 'tabs'));
  if (args.has('stage-hosts') && local) throw new Error('--stage-hosts works with a mesh, not with --local');
  const widths = numList(args, 'width') ?? [2];
  const depths = numList(args, 'depth') ?? [4];
  for (const w of widths) if (!(Number.isInteger(w) && w >= 1 && w <= MAX_WIDTH)) throw new Error(`--width: ${w} is not an integer from 1 to ${MAX_WIDTH}`);
  for (const d of depths) if (!(Number.isInteger(d) && d >= 1 && d <= MAX_DEPTH)) throw new Error(`--depth: ${d} is not an integer from 1 to ${MAX_DEPTH}`);
  const backendArg = parseBackend(args.has('backend') ? str(args, 'backend') : undefined);
  if (typeof backendArg !== 'string') throw new Error('--backend takes one backend for every stage here: auto, webgpu or wasm');
  const backend: BackendChoice = backendArg;
  // The draft follows a wasm target onto the CPU backend, in its worker (its own thread).
  const draftBackend = backend === 'wasm' ? 'wasm' : 'webgpu';
  const base: Base = { backend, tokens: num(args, 'tokens', 128), branchRatio: args.has('branch-ratio') ? num(args, 'branch-ratio', 0) : undefined, draft, sampling: samplingFromArgs(args), prompts };
  const emulations = emulationsFromArgs(args);

  const notes = [
    'All tabs run on this one machine: they share its CPU cores and its (software) GPU, so stages that would run in parallel on separate laptops take turns here unless their costs are emulated (--stage-ms, --draft-ms: the real compute, then a timer that costs no CPU, pads each level to the modelled time).',
    local
      ? 'Local stages (--local): every stage of a run in ONE tab, no network; without emulation pipelining cannot overlap stages.'
      : `Mesh: a leader tab (prompt, token tree, draft model) plus ${stageHostsText(stageHosts, browsers)}, linked over WebRTC on loopback; "single" runs all layers in one tab.`,
    ...emulations.map((e) => `Emulation: ${emulationText(e)}.`),
    `Stage backend: ${backend} (${backend === 'wasm' ? 'the C kernels in WebAssembly, on each tab\'s CPU thread' : backend === 'auto' ? 'each stage measures both and takes the faster' : 'WGSL kernels on WebGPU'}); the leader's draft model runs in its own worker on ${local ? 'wasm when every stage chose wasm, else WebGPU' : draftBackend === 'wasm' ? 'the WebAssembly CPU backend' : 'WebGPU'}.`,
  ];
  if (!modes.includes('single')) {
    modes.unshift('single');
    notes.push('single was added to --modes: it is the reference every other mode\'s tokens are checked against.');
  }
  const hops = local ? [0] : hopDelays;
  if (local && hopDelays.some((h) => h !== 0)) notes.push(`Hop delays ${hopDelays.filter((h) => h !== 0).join(', ')} ms skipped: a hop delay exists only in the mesh transport.`);
  for (const n of notes) process.stderr.write(`bench: ${n}\n`);

  // Other work on the machine slows every tab: record how busy it was.
  const loadAtStart = loadavg()[0];
  const others = modeVariants(modes.filter((m) => m !== 'single'), widths, depths);
  const single: ModeVariant[] = [{ mode: 'single', width: null, depth: null }];
  const total = emulations.length * (prompts.length + stageCounts.length * hops.length * others.length * prompts.length);
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
  const transport: Transport = local ? 'local' : 'mesh';
  /** Runs one configuration; a failure (a tab lost, a load error) is reported and the others still run. */
  const attempt = async (what: string, run: () => Promise<void>): Promise<void> => {
    try {
      await run();
    } catch (e) {
      failures.push(`${what}: ${errorMessage(e)}`);
      process.stderr.write(`\nbench: FAILED ${failures[failures.length - 1]}\n`);
    }
  };
  try {
    tick('start');
    for (const emulation of emulations) {
      const emu = { stageMs: emulation.stageMs, draftMs: emulation.draftMs };
      const emuText = emulation.stageMs || emulation.draftMs ? `, stage ${costText(emulation.stageMs)} ms, draft ${costText(emulation.draftMs)} ms` : '';
      const inOneTab = async (stages: number, which: ModeVariant[]): Promise<void> => {
        const res = await runInOneTab(host, base, emulation, stages, which, tick);
        adapter = res.adapter;
        for (const run of res.runs) records.push(benchRecord(run.report, { transport, stages: run.stages, hopDelayMs: 0, ...emu, ...run.variant, prompt: run.prompt }));
      };
      // Single is the reference for both transports: it runs in one tab either way.
      await attempt(`single${emuText}`, () => inOneTab(1, single));
      for (const stages of stageCounts) {
        if (local) {
          await attempt(`${stages} stages${emuText}`, () => inOneTab(stages, others));
          continue;
        }
        for (const hopDelayMs of hops) {
          const leader = await host.newPage(0);
          await attempt(`${stages} stages, hop delay ${hopDelayMs} ms${emuText}`, async () => {
            try {
              await leader.goto(`${host.baseUrl}/src/headless/page.html`);
              const mesh = await formMesh(host, leader, { stages, modelUrl: host.modelUrls[0], draftUrl: host.modelUrls[1], hopDelayMs, emulation, stageHosts, backend, draftBackend });
              try {
                for (const v of others) {
                  for (const [i, prompt] of prompts.entries()) {
                    const r = await mesh.generate({ prompt, maxNewTokens: base.tokens, sampling: base.sampling, mode: v.mode, draft: base.draft, width: v.width ?? undefined, depth: v.depth ?? undefined, branchRatio: base.branchRatio });
                    adapter = r.adapter;
                    records.push(benchRecord(r, { transport, stages, hopDelayMs, ...emu, ...v, prompt: i }));
                    tick(`${variantLabel(v)} x${stages} hop ${hopDelayMs} ms prompt ${i + 1}`);
                  }
                }
              } finally {
                await mesh.close();
              }
            } finally {
              await leader.close().catch(() => undefined);
            }
          });
        }
      }
    }
  } finally {
    await host.close();
  }
  if (process.stderr.isTTY) process.stderr.write('\n');

  notes.push(`Load average (1 min) of the machine: ${loadAtStart.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the end (${cpus().length} cores).`);
  const mismatches = checkLossless(records);
  const compared = comparedRuns(records);
  const results: BenchResults = {
    createdAt: new Date().toISOString(),
    conditions: {
      adapter,
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      placement: local ? 'local: all stages of a run in one headless Chromium tab' : `mesh: leader tab + ${stageHostsText(stageHosts, browsers)} (WebRTC, loopback; --stage-hosts ${stageHosts})`,
      notes,
    },
    settings: {
      stages: stageCounts, modes, hopDelaysMs: hops, stageMs: [...new Set(emulations.map((e) => costText(e.stageMs)))], draftMs: [...new Set(emulations.map((e) => costText(e.draftMs)))],
      tokens: base.tokens, widths, depths, branchRatio: base.branchRatio ?? DEFAULT_BRANCH_RATIO, draft, prompts,
    },
    records,
    mismatches,
    failures,
  };
  const rows = summarize(records);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'bench-results.json'), JSON.stringify(results, null, 1));
  writeFileSync(join(outDir, 'bench-report.html'), htmlReport(results));
  process.stdout.write(`${conditionsText(results.conditions)}\n\n${formatTable(rows)}\n\n${TABLE_LEGEND}\n\n`);
  process.stdout.write(`Wrote ${join(outDir, 'bench-results.json')} and ${join(outDir, 'bench-report.html')}\n`);
  if (rows.some(overran)) {
    process.stdout.write(`\nRows marked "!" overran their emulated budgets on more than ${MAX_OVERRUN_SHARE * 100}% of levels: they describe this shared machine, not dedicated devices.\n`);
  }
  if (failures.length) {
    const all = records.every((r) => r.mode === 'single');
    process.stderr.write(`\n*** ${failures.length} CONFIGURATION(S) FAILED${all ? ' (EVERY ONE)' : ''} (no numbers for them) ***\n${failures.map((f) => `  ${f}`).join('\n')}\n`);
    process.exitCode = 1;
  }
  if (mismatches.length) {
    process.stderr.write(`\n*** LOSSLESS CHECK FAILED: ${mismatches.length} run(s) differ from single ***\n${mismatches.map((m) => `  ${m}`).join('\n')}\n`);
    process.exitCode = 1;
  } else if (compared === 0) {
    process.stderr.write('\n*** NOTHING WAS COMPARED: no run of another mode finished next to a single run, so losslessness was not checked ***\n');
    process.exitCode = 1;
  } else {
    const checkedModes = [...new Set(records.filter((r) => r.lossless !== null).map((r) => r.mode))];
    process.stdout.write(`Lossless: all ${compared} runs (${checkedModes.join(', ')}) produced exactly the tokens of single on the same prompt.\n`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`\nbench: ${errorMessage(e)}\n`);
  process.exit(1);
});
