// npm run demo -- --stages N --prompt TEXT [--mode specpipe|tree|pp|single] [--max-new-tokens 64]
//   [--draft model|ngram|none] [--width W] [--depth D] [--temperature T --top-k K --top-p P] [--seed S]
//   [--model DIR_OR_URL --draft-model DIR_OR_URL]
// The chat demo without a display: headless Chromium (real WebGPU) generates, the terminal shows the
// text as it streams and a live stats line.
import { parseArgs, str, num, rejectUnknown } from './args.ts';
import { startPageHost } from './page-host.ts';
import { SAMPLING_ARGS, samplingFromArgs } from './sampling-args.ts';
import { LiveStats, type LiveEvent, type StatsSnapshot } from '../app/live-stats.ts';
import type { DemoReport, DemoRequest } from '../app/demo-run.ts';
import type { DraftKind } from '../app/local-engine.ts';
import type { Mode } from '../spec/scheduler.ts';

const KNOWN = ['stages', 'prompt', 'mode', 'max-new-tokens', 'draft', 'width', 'depth', 'model', 'draft-model', ...SAMPLING_ARGS];
const MODES: Mode[] = ['single', 'pp', 'tree', 'specpipe'];
const DRAFTS: DraftKind[] = ['model', 'ngram', 'none'];
const dim = (s: string): string => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);

export function statsLine(s: StatsSnapshot): string {
  const f = (v: number | null, d: number): string => (v === null ? '-' : v.toFixed(d));
  const hit = s.hitRate === null ? '' : ` · hit ${(s.hitRate * 100).toFixed(0)}%`;
  return `${s.tokens} tok · ${f(s.tokensPerSecond, 1)} tok/s · between tokens p50 ${f(s.tbtP50Ms, 1)} ms p95 ${f(s.tbtP95Ms, 1)} ms${hit} · ${f(s.tokensPerStep, 2)} tok/step (bound ${f(s.boundTokensPerStep, 2)})`;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  rejectUnknown(args, KNOWN);
  const mode = str(args, 'mode', 'specpipe') as Mode;
  if (!MODES.includes(mode)) throw new Error(`--mode must be one of ${MODES.join(', ')}`);
  const draft = str(args, 'draft', 'model') as DraftKind;
  if (!DRAFTS.includes(draft)) throw new Error(`--draft must be one of ${DRAFTS.join(', ')}`);
  const stages = num(args, 'stages', 2);
  if (!Number.isInteger(stages) || stages < 1) throw new Error('--stages must be a positive whole number');
  const host = await startPageHost({ models: [str(args, 'model', 'public/models/demo-target'), str(args, 'draft-model', 'public/models/demo-draft')] });
  try {
    process.stderr.write(
      `The mesh (stages in separate tabs over WebRTC) is not wired into the demo yet: running ${mode === 'single' ? 1 : stages} stage(s) inside one headless tab.\n`,
    );
    const page = await host.newPage();
    const live = new LiveStats(mode === 'single' ? 1 : stages, (mode === 'specpipe' || mode === 'tree') && draft !== 'none');
    let lastLine: number | null = null;
    await page.exposeFunction('__specpipeLive', (e: LiveEvent) => {
      live.apply(e);
      if (e.kind !== 'token') return;
      process.stdout.write(e.text);
      // A stats line every two seconds, inline and dimmed so the text stays readable.
      lastLine ??= e.t;
      if (e.t - lastLine > 2000) {
        lastLine = e.t;
        process.stdout.write(dim(` ⟨${statsLine(live.snapshot())}⟩ `));
      }
    });
    await page.goto(`${host.baseUrl}/src/cli/page.html`);
    const req: DemoRequest = {
      modelUrl: host.modelUrls[0],
      draftUrl: host.modelUrls[1],
      draft,
      stages,
      mode,
      prompt: str(args, 'prompt'),
      maxNewTokens: num(args, 'max-new-tokens', 64),
      width: num(args, 'width', 2),
      depth: num(args, 'depth', 4),
      sampling: samplingFromArgs(args),
    };
    process.stdout.write(`${req.prompt}`);
    const report = (await page.evaluate(async (r) => {
      const path = '/src/app/demo-run.ts';
      const m = (await import(/* @vite-ignore */ path)) as typeof import('../app/demo-run.ts');
      return m.demoLocal(r);
    }, req)) as DemoReport;
    const m = report.metrics;
    process.stdout.write(
      `\n\n${statsLine(live.snapshot())}\n` +
        `stop: ${report.stopReason}; first token ${m.ttftMs?.toFixed(0) ?? '-'} ms; load ${(report.loadMs / 1000).toFixed(1)} s; ` +
        `stage busy ${report.stageBusyMs.map((b) => b.toFixed(0)).join(' / ')} ms; ${report.adapter}\n` +
        `stages (one tab): ${report.stages.join(' | ')}\n`,
    );
  } finally {
    await host.close();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`demo: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
