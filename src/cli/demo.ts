// npm run demo -- --stages N --prompt TEXT [--mode specpipe|tree|pp|single] [--max-new-tokens 64]
//   [--draft model|ngram|none] [--width W] [--depth D] [--temperature T --top-k K --top-p P] [--seed S]
//   [--hop-delay-ms D] [--stage-ms A[:B]] [--draft-ms A[:B]] [--browsers M] [--stage-hosts tabs|node|mixed] [--local]
//   [--model DIR_OR_URL --draft-model DIR_OR_URL]
// The chat demo without a display: headless Chromium opens a leader tab and N stage tabs (over M
// browser processes), forms the ring over WebRTC, and the terminal shows the text as it streams with
// a live stats line. --local: every stage inside one tab instead (no network). --stage-ms/--draft-ms
// emulate dedicated devices (off by default); the summary prints the conditions and the bound.
// --stage-hosts node: the stages are Node stage host processes (`npm run stage`) instead of tabs;
// mixed: tabs and Node hosts alternating.
import type { Page } from '@playwright/test';
import { parseArgs, str, num, flag, rejectUnknown } from '../common/args.ts';
import { startPageHost } from './page-host.ts';
import { formMesh } from './mesh-tabs.ts';
import { parseStageHosts, stageHostsText } from './stage-processes.ts';
import { stageViewLine } from '../app/mesh-report.ts';
import { SAMPLING_ARGS, samplingFromArgs } from './sampling-args.ts';
import { EMULATION_ARGS, emulationFromArgs } from './emulation-args.ts';
import { LiveStats, statsLaw, statsLine, type LiveEvent } from '../app/live-stats.ts';
import { boundLine, emulationLine } from '../app/report-text.ts';
import type { DemoReport, DemoRequest } from '../headless/demo-run.ts';
import { DRAFT_KINDS, MODES, type DraftKind } from '../app/modes.ts';
import type { Mode } from '../speculative/scheduler.ts';
import { errorMessage } from '../common/errors.ts';

const KNOWN = ['stages', 'prompt', 'mode', 'max-new-tokens', 'draft', 'width', 'depth', 'model', 'draft-model', 'hop-delay-ms', 'browsers', 'stage-hosts', 'local', ...EMULATION_ARGS, ...SAMPLING_ARGS];
const dim = (s: string): string => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);

/** Prints streamed text with a dimmed stats line every two seconds (inline, so the text stays readable). */
function printer(live: LiveStats): (text: string, t: number, hit: boolean | null) => void {
  let lastLine: number | null = null;
  return (text, t, hit) => {
    live.token(t, hit);
    process.stdout.write(text);
    lastLine ??= t;
    if (t - lastLine > 2000) {
      lastLine = t;
      process.stdout.write(dim(` ⟨${statsLine(live.snapshot())}⟩ `));
    }
  };
}

/** Every stage inside the one tab `page`; stage packets feed the live step time. */
async function runLocal(page: Page, req: DemoRequest, live: LiveStats): Promise<string> {
  const print = printer(live);
  await page.exposeFunction('__specpipeLive', (e: LiveEvent) => (e.kind === 'token' ? print(e.text, e.t, e.hit) : live.apply(e)));
  const r = (await page.evaluate(async (q) => {
    const path = '/src/headless/demo-run.ts';
    const m = (await import(/* @vite-ignore */ path)) as typeof import('../headless/demo-run.ts');
    return m.demoLocal(q);
  }, req)) as DemoReport;
  return (
    `stop: ${r.stopReason}; first token ${r.metrics.ttftMs?.toFixed(0) ?? '-'} ms; hit rate ${r.metrics.hitRate === null ? '-' : (r.metrics.hitRate * 100).toFixed(0) + '%'}; load ${(r.loadMs / 1000).toFixed(1)} s; ` +
    `stage busy ${r.stageBusyMs.map((b) => b.toFixed(0)).join(' / ')} ms; ${r.adapter}\nstages (all in one tab): ${r.stages.join(' | ')}\n` +
    `${boundLine(r.bound, r.metrics.tbtMeanMs)}\n${emulationLine(r.emulation)}`
  );
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  rejectUnknown(args, KNOWN);
  const mode = str(args, 'mode', 'specpipe') as Mode;
  if (!MODES.includes(mode)) throw new Error(`--mode must be one of ${MODES.join(', ')}`);
  const draft = str(args, 'draft', 'model') as DraftKind;
  if (!DRAFT_KINDS.includes(draft)) throw new Error(`--draft must be one of ${DRAFT_KINDS.join(', ')}`);
  const stages = num(args, 'stages', 2);
  if (!Number.isInteger(stages) || stages < 1) throw new Error('--stages must be a positive whole number');
  const local = flag(args, 'local') || mode === 'single';
  const hopDelayMs = num(args, 'hop-delay-ms', 0);
  const stageHosts = parseStageHosts(str(args, 'stage-hosts', 'tabs'));
  if (args.has('stage-hosts') && local) throw new Error('--stage-hosts works with a mesh, not with --local or single mode');
  const host = await startPageHost({
    models: [str(args, 'model', 'public/models/demo-target'), str(args, 'draft-model', 'public/models/demo-draft')],
    browsers: local ? 1 : num(args, 'browsers', 2),
  });
  try {
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
      emulation: emulationFromArgs(args),
    };
    const live = new LiveStats(mode === 'single' ? 1 : stages, statsLaw(mode, draft));
    const page = await host.newPage();
    await page.goto(`${host.baseUrl}/src/headless/page.html`);
    let summary: string;
    if (local) {
      process.stderr.write(`${mode === 'single' ? 1 : stages} stage(s) inside one headless tab (no network).\n`);
      process.stdout.write(req.prompt);
      summary = await runLocal(page, req, live);
    } else {
      process.stderr.write(`Opening a leader tab and ${stages} stages, ${stageHostsText(stageHosts, host.browsers.length)}; forming the ring over WebRTC (hop delay ${hopDelayMs} ms)...\n`);
      const print = printer(live);
      // Hit or miss is not reported per token by the mesh: the live line leaves it out, the summary has it.
      await page.exposeFunction('__specpipeStream', (text: string) => print(text, performance.now(), null));
      const mesh = await formMesh(host, page, { stages, modelUrl: req.modelUrl, draftUrl: req.draftUrl ?? undefined, hopDelayMs, emulation: req.emulation, stageHosts });
      process.stdout.write(req.prompt);
      const r = await mesh.generate({ prompt: req.prompt, maxNewTokens: req.maxNewTokens, sampling: req.sampling, mode, draft, width: req.width, depth: req.depth });
      const m = r.metrics;
      summary =
        `stop: ${r.stopReason}; first token ${m.ttftMs?.toFixed(0) ?? '-'} ms; hit rate ${m.hitRate === null ? '-' : (m.hitRate * 100).toFixed(0) + '%'} ` +
        `(bound ${m.boundTokensPerStep?.toFixed(2) ?? '-'} tokens/step, ${m.boundSpeedupOverPp?.toFixed(2) ?? '-'}x over pp); ring trip p50 ${r.ringTripP50Ms?.toFixed(1) ?? '-'} ms; ${r.adapter}\n` +
        `stages: ${r.stageStats.map((s, i) => `${i + 1}: ${s.role ?? '?'} (busy ${(s.busyFraction * 100).toFixed(0)}%)`).join(' | ')}\n` +
        `stage hosts: ${stageHosts}\n${r.ring.map((v) => `  ${stageViewLine(v)}\n`).join('')}` +
        `hops (ping round trip p50/p95 ms): ${r.hops.map((h) => `${h.from} -> ${h.to} ${h.rttP50Ms?.toFixed(1) ?? '-'}/${h.rttP95Ms?.toFixed(1) ?? '-'}`).join(', ')}\n` +
        `${boundLine(r.bound, r.timings.tbtMeanMs)}\n${emulationLine(r.emulation)}`;
      await mesh.close();
    }
    process.stdout.write(`\n\n${statsLine(live.snapshot())}\n${summary}\n`);
  } finally {
    await host.close();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`demo: ${errorMessage(e)}\n`);
  process.exit(1);
});
