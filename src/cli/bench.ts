// npm run bench -- [--stages 2,4,8] [--modes single,pp,tree,specpipe] [--hop-delay-ms 0,10,30]
//   [--tokens 128] [--prompts bench/prompts.txt] [--width 2] [--depth 4] [--draft model|ngram]
//   [--out bench-results] [--model DIR_OR_URL --draft-model DIR_OR_URL] [--temperature T --top-k K --top-p P --seed S]
// Runs every mode on the same prompts for every stage count in headless Chromium (real WebGPU),
// checks each mode's tokens against `single`, and writes bench-results.json + bench-report.html.
import { cpus } from 'node:os';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs, str, num, numList, rejectUnknown } from './args.ts';
import { startPageHost } from './page-host.ts';
import { SAMPLING_ARGS, samplingFromArgs } from './sampling-args.ts';
import { checkLossless, conditionsText, formatTable, htmlReport, progressBar, summarize, type BenchRecord, type BenchResults } from './bench-results.ts';
import type { BenchPageResult, BenchRequest } from '../app/bench-run.ts';
import type { DraftKind } from '../app/local-engine.ts';
import type { Mode } from '../spec/scheduler.ts';

const KNOWN = ['stages', 'modes', 'hop-delay-ms', 'tokens', 'prompts', 'width', 'depth', 'draft', 'out', 'model', 'draft-model', ...SAMPLING_ARGS];
const MODES: Mode[] = ['single', 'pp', 'tree', 'specpipe'];

/** Prompts from a file: one a line; blank lines and # comments skipped. */
export function readPrompts(file: string): string[] {
  const prompts = readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (prompts.length === 0) throw new Error(`${file}: no prompts (one a line)`);
  return prompts;
}

function modesOf(v: string): Mode[] {
  const modes = v.split(',').map((s) => s.trim()) as Mode[];
  for (const m of modes) if (!MODES.includes(m)) throw new Error(`--modes: "${m}" is not one of ${MODES.join(', ')}`);
  return modes;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  rejectUnknown(args, KNOWN);
  const stageCounts = numList(args, 'stages') ?? [2, 4, 8];
  const modes = modesOf(str(args, 'modes', MODES.join(',')));
  const hopDelays = numList(args, 'hop-delay-ms') ?? [0];
  const draft = str(args, 'draft', 'model') as DraftKind;
  if (draft !== 'model' && draft !== 'ngram') throw new Error('--draft must be model or ngram');
  const promptsFile = str(args, 'prompts', 'bench/prompts.txt');
  const prompts = readPrompts(promptsFile);
  const outDir = resolve(str(args, 'out', 'bench-results'));
  const base = { tokens: num(args, 'tokens', 128), width: num(args, 'width', 2), depth: num(args, 'depth', 4), draft, sampling: samplingFromArgs(args), prompts };

  const notes = [
    'The mesh (one tab per stage over WebRTC) is not wired into the bench yet: every stage of a run lives in ONE headless tab, so stages take turns on one GPU and pipelining cannot overlap their compute; TBT here measures the scheduler and the compute, not a distributed ring.',
  ];
  const skippedHops = hopDelays.filter((h) => h !== 0);
  if (skippedHops.length) notes.push(`Hop delays ${skippedHops.join(', ')} ms skipped: a hop delay exists only in the mesh transport (local stages have no network hop).`);
  for (const n of notes) process.stderr.write(`bench: ${n}\n`);

  const singleRuns = modes.includes('single') ? prompts.length : 0;
  const otherModes = modes.filter((m) => m !== 'single');
  const total = singleRuns + stageCounts.length * otherModes.length * prompts.length;
  let done = 0;
  const draw = (label: string): void => {
    const bar = progressBar(done, total, label);
    process.stderr.write(process.stderr.isTTY ? `\r\x1b[2K${bar}` : `${bar}\n`);
  };

  const host = await startPageHost({ models: [str(args, 'model', 'public/models/demo-target'), str(args, 'draft-model', 'public/models/demo-draft')] });
  const records: BenchRecord[] = [];
  let adapter = '';
  try {
    const page = await host.newPage();
    await page.exposeFunction('__specpipeBenchProgress', (label: string) => {
      done++;
      draw(label);
    });
    await page.goto(`${host.baseUrl}/src/cli/page.html`);
    draw('loading');
    for (const [i, stages] of stageCounts.entries()) {
      const req: BenchRequest = { ...base, modelUrl: host.modelUrls[0], draftUrl: host.modelUrls[1], stages, modes: i === 0 ? modes : otherModes };
      const res = (await page.evaluate(async (r) => {
        const path = '/src/app/bench-run.ts';
        const m = (await import(/* @vite-ignore */ path)) as typeof import('../app/bench-run.ts');
        return m.benchLocal(r);
      }, req)) as BenchPageResult;
      adapter = res.adapter;
      for (const run of res.runs) records.push({ ...run, transport: 'local', hopDelayMs: 0, lossless: null });
    }
  } finally {
    await host.close();
  }
  if (process.stderr.isTTY) process.stderr.write('\n');

  const mismatches = checkLossless(records);
  const results: BenchResults = {
    createdAt: new Date().toISOString(),
    conditions: {
      adapter,
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      placement: 'local stages: all stages of a run in one headless Chromium tab; the draft model in the same tab',
      notes,
    },
    settings: { stages: stageCounts, modes, hopDelaysMs: hopDelays, tokens: base.tokens, width: base.width, depth: base.depth, draft, prompts },
    records,
    mismatches,
  };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'bench-results.json'), JSON.stringify(results, null, 1));
  writeFileSync(join(outDir, 'bench-report.html'), htmlReport(results));
  process.stdout.write(`${conditionsText(results.conditions)}\n\n${formatTable(summarize(records))}\n\n`);
  process.stdout.write(`Wrote ${join(outDir, 'bench-results.json')} and ${join(outDir, 'bench-report.html')}\n`);
  if (mismatches.length) {
    process.stderr.write(`\n*** LOSSLESS CHECK FAILED: ${mismatches.length} run(s) differ from single ***\n${mismatches.map((m) => `  ${m}`).join('\n')}\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write('Lossless: every mode produced exactly the tokens of single on every prompt.\n');
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`\nbench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
