// npm run generate -- --model DIR_OR_URL_OR_FILE.gguf (--prompt TEXT | --prompt-ids 1,2,3) --max-new-tokens N
//   [--greedy | --temperature T --top-k K --top-p P --seed S] [--dump-logits K] [--mode single|pp|tree|specpipe]
//   [--local-stages N | --stages N [--stage-hosts tabs|node|mixed] [--browsers M] [--hop-delay-ms D] [--wire f32|f16] [--split speed|equal] [--hold-stage]]
//   [--draft-model DIR_OR_URL | --draft ngram] [--width W] [--depth D] [--branch-ratio R] [--stage-ms A[:B]] [--draft-ms A[:B]] [--quant q8_0|q4_0] [--backend auto|webgpu|wasm|B1,B2,...] [--threads N] [--json]
// Runs the model in headless Chromium (real WebGPU) and prints the tokens, text and timings.
// --local-stages: every stage in one tab. --stages: a mesh of N stage tabs plus a leader tab, spread
// over M browser processes (default 2), linked over WebRTC; the report adds per-hop round trips and
// each stage's device and memory. --stage-hosts node: the stages are Node stage host processes
// (`npm run stage`, Dawn WebGPU) instead of tabs; mixed: tabs and Node hosts alternating.
// --stage-ms A[:B] / --draft-ms A[:B]: emulate dedicated devices (each stage's level takes at least
// A + B*rows ms, each draft forward likewise; real compute, then a CPU-free timer); the report
// carries the overrun share and every result is printed with its conditions and bound.
// --quant q8_0|q4_0: the target's projection matrices as GGML blocks, quantized on load (one tab).
// --backend: what computes the stages in one tab: webgpu (default), wasm (the CPU backend), auto
// (measure both at load, take the faster) or one per stage (webgpu,wasm); the report's adapter says.
// With --stages, one backend for every stage tab or Node host.
// --threads N: the wasm backend splits each matmul over N threads (Workers; the page is cross-origin isolated).
import { parseArgs, str, num, numList, flag, rejectUnknown } from '../common/args.ts';
import { startPageHost } from './page-host.ts';
import type { LocalRunRequest } from '../headless/local-run.ts';
import type { GenerationReport } from '../app/engine.ts';
import type { Mode } from '../speculative/scheduler.ts';
import { formMesh } from './mesh-tabs.ts';
import { parseStageHosts } from './stage-processes.ts';
import { stageViewLine } from '../app/mesh-report.ts';
import { errorMessage } from '../common/errors.ts';
import { isQuantFormat } from '../model/quant.ts';
import { parseBackend } from '../pipeline/backend.ts';
import { EMULATION_ARGS, emulationFromArgs } from './emulation-args.ts';
import { boundLine, emulationLine } from '../app/report-text.ts';

const KNOWN = ['model', 'prompt', 'prompt-ids', 'max-new-tokens', 'greedy', 'temperature', 'top-k', 'top-p', 'seed', 'dump-logits', 'json', 'mode', 'local-stages', 'draft-model', 'draft', 'width', 'depth', 'branch-ratio', 'stages', 'browsers', 'hop-delay-ms', 'wire', 'split', 'hold-stage', 'stage-hosts', 'quant', 'backend', 'threads', ...EMULATION_ARGS];
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

  const meshStages = args.has('stages') ? num(args, 'stages', 1) : 0;
  if (meshStages && args.has('local-stages')) throw new Error('give --stages (tabs) or --local-stages (one tab), not both');
  if (meshStages && args.has('dump-logits')) throw new Error('--dump-logits works with --local-stages only');
  const browsers = num(args, 'browsers', 2);
  const stageHosts = parseStageHosts(str(args, 'stage-hosts', 'tabs'));
  if (args.has('stage-hosts') && !meshStages) throw new Error('--stage-hosts works with --stages N (a mesh), not in one tab');
  if (!['f32', 'f16'].includes(str(args, 'wire', 'f32'))) throw new Error('--wire must be f32 or f16');
  if (!['speed', 'equal'].includes(str(args, 'split', 'speed'))) throw new Error('--split must be speed or equal');
  const emulation = emulationFromArgs(args);
  const quant = args.has('quant') ? str(args, 'quant') : undefined;
  if (quant !== undefined && !isQuantFormat(quant)) throw new Error('--quant must be q8_0 or q4_0');
  if (quant && meshStages) throw new Error('--quant works with one tab (--local-stages) for now, not with --stages');
  const backend = parseBackend(args.has('backend') ? str(args, 'backend') : undefined);
  if (meshStages && (args.has('threads') || typeof backend !== 'string')) throw new Error('with --stages, --backend takes one backend for every stage (auto, webgpu or wasm) and --threads is not available');

  const host = await startPageHost({ models: [str(args, 'model'), ...(draftDir ? [draftDir] : [])], browsers: meshStages ? browsers : 1 });
  try {
    const page = await host.newPage();
    if (!json) await page.exposeFunction('__specpipeStream', (t: string) => process.stdout.write(t));
    await page.goto(`${host.baseUrl}/src/headless/page.html`);
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
      branchRatio: args.has('branch-ratio') ? num(args, 'branch-ratio', 0) : undefined,
      dumpLogits: num(args, 'dump-logits', 0),
      stream: !json,
      emulation,
      quant,
      backend,
      wasmThreads: num(args, 'threads', 1),
    };
    if (!json && req.prompt) process.stdout.write(req.prompt);
    const report = meshStages
      ? await (async () => {
          const mesh = await formMesh(host, page, {
            stages: meshStages,
            modelUrl: req.modelUrl,
            draftUrl: req.draftUrl,
            hopDelayMs: num(args, 'hop-delay-ms', 0),
            wire: str(args, 'wire', 'f32') as 'f32' | 'f16',
            split: str(args, 'split', 'speed') as 'speed' | 'equal',
            holdStage: flag(args, 'hold-stage'),
            emulation: req.emulation,
            stageHosts,
            ...(typeof backend === 'string' && args.has('backend') ? { backend } : {}),
          });
          try {
            return await mesh.generate({ prompt: req.prompt, promptIds: req.promptIds, maxNewTokens: req.maxNewTokens, sampling: req.sampling, mode: req.mode, draft: req.draft, width: req.width, depth: req.depth, branchRatio: req.branchRatio });
          } finally {
            await mesh.close(); // ends the Node stage hosts too
          }
        })()
      : ((await page.evaluate(async (r) => {
          const path = '/src/headless/local-run.ts';
          const m = (await import(/* @vite-ignore */ path)) as typeof import('../headless/local-run.ts');
          return m.runLocal(r);
        }, req)) as GenerationReport);
    if (json) {
      process.stdout.write(JSON.stringify('ring' in report ? { ...report, stageHosts } : report) + '\n');
    } else {
      if (report.text === null) process.stdout.write(report.tokens.join(' '));
      const t = report.timings;
      process.stdout.write(
        `\n\n[${report.tokens.length} tokens, stop: ${report.stopReason}; load ${t.loadMs.toFixed(0)} ms, ` +
          `first token ${t.ttftMs?.toFixed(0)} ms, between tokens mean ${t.tbtMeanMs?.toFixed(1)} ms p50 ${t.tbtP50Ms?.toFixed(1)} ms p95 ${t.tbtP95Ms?.toFixed(1)} ms; ${report.adapter}]\n` +
          `[${boundLine(report.bound, t.tbtMeanMs)}]\n[${emulationLine(report.emulation)}]\n`,
      );
      if ('ring' in report) {
        const hops = report.hops.map((h) => `${h.from} -> ${h.to} ${h.rttP50Ms?.toFixed(1) ?? '-'}/${h.rttP95Ms?.toFixed(1) ?? '-'}`).join(', ');
        const ring = report.ring.map((v) => `[${stageViewLine(v)}]\n`).join('');
        process.stdout.write(`[stage hosts: ${stageHosts}]\n${ring}[hop round trips p50/p95 ms: ${hops}; recoveries ${report.recoveries}]\n`);
      }
    }
  } finally {
    await host.close();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`generate: ${errorMessage(e)}\n`);
  process.exit(1);
});
