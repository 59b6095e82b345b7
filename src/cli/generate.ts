// npm run generate -- --model DIR_OR_URL (--prompt TEXT | --prompt-ids 1,2,3) --max-new-tokens N
//   [--greedy | --temperature T --top-k K --top-p P --seed S] [--dump-logits K] [--mode single|pp|tree|specpipe]
//   [--local-stages N] [--draft-model DIR_OR_URL | --draft ngram] [--width W] [--depth D] [--json]
// Runs the model in headless Chromium (real WebGPU) and prints the tokens, text and timings.
import { parseArgs, str, num, numList, flag, rejectUnknown } from './args.ts';
import { startPageHost } from './page-host.ts';
import type { LocalRunReport, LocalRunRequest } from '../app/local-run.ts';
import type { Mode } from '../spec/scheduler.ts';

const KNOWN = ['model', 'prompt', 'prompt-ids', 'max-new-tokens', 'greedy', 'temperature', 'top-k', 'top-p', 'seed', 'dump-logits', 'json', 'mode', 'local-stages', 'draft-model', 'draft', 'width', 'depth'];
const MODES: Mode[] = ['single', 'pp', 'tree', 'specpipe'];

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  rejectUnknown(args, KNOWN);
  const json = flag(args, 'json');
  const mode = str(args, 'mode', 'single') as Mode;
  if (!MODES.includes(mode)) throw new Error(`--mode must be one of ${MODES.join(', ')}`);
  if (args.has('prompt') === args.has('prompt-ids')) throw new Error('give exactly one of --prompt TEXT or --prompt-ids 1,2,3');
  const greedy = flag(args, 'greedy') || !args.has('temperature');
  const draftDir = args.has('draft-model') ? str(args, 'draft-model') : undefined;

  const host = await startPageHost({ models: [str(args, 'model'), ...(draftDir ? [draftDir] : [])] });
  try {
    const page = await host.newPage();
    if (!json) await page.exposeFunction('__specpipeStream', (t: string) => process.stdout.write(t));
    await page.goto(`${host.baseUrl}/src/cli/page.html`);
    const req: LocalRunRequest = {
      modelUrl: host.modelUrls[0],
      draftUrl: draftDir ? host.modelUrls[1] : undefined,
      draft: draftDir ? 'model' : args.has('draft') ? (str(args, 'draft') as 'ngram' | 'none') : 'none',
      prompt: args.has('prompt') ? str(args, 'prompt') : undefined,
      promptIds: numList(args, 'prompt-ids'),
      maxNewTokens: num(args, 'max-new-tokens', 32),
      sampling: greedy
        ? { temperature: 0, topK: 0, topP: 1, seed: num(args, 'seed', 0) }
        : { temperature: num(args, 'temperature', 1), topK: num(args, 'top-k', 0), topP: num(args, 'top-p', 1), seed: num(args, 'seed', 0) },
      mode,
      stages: num(args, 'local-stages', 1),
      width: args.has('width') ? num(args, 'width', 1) : undefined,
      depth: args.has('depth') ? num(args, 'depth', 4) : undefined,
      dumpLogits: num(args, 'dump-logits', 0),
      stream: !json,
    };
    if (!json && req.prompt) process.stdout.write(req.prompt);
    const report = await page.evaluate(async (r) => {
      const path = '/src/app/local-run.ts';
      const m = (await import(/* @vite-ignore */ path)) as typeof import('../app/local-run.ts');
      return m.runLocal(r);
    }, req) as LocalRunReport;
    if (json) {
      process.stdout.write(JSON.stringify(report) + '\n');
    } else {
      if (report.text === null) process.stdout.write(report.tokens.join(' '));
      const t = report.timings;
      process.stdout.write(
        `\n\n[${report.tokens.length} tokens, stop: ${report.stopReason}; load ${t.loadMs.toFixed(0)} ms, ` +
          `first token ${t.ttftMs?.toFixed(0)} ms, between tokens p50 ${t.tbtP50Ms?.toFixed(1)} ms p95 ${t.tbtP95Ms?.toFixed(1)} ms; ${report.adapter}]\n`,
      );
    }
  } finally {
    await host.close();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`generate: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
