// Browser side of e2e/engine.spec.ts: the public Engine API (src/index.ts) as a library user meets it.
import { createEngine, DEFAULT_SAMPLING, type EnginePhase, type GenerationReport, type LoadProgress, type TabEngine, type TokenEvent } from '../../src/index.ts';

const TARGET = '/models/demo-target/';
const DRAFT = '/models/demo-draft/';

export interface StreamOutcome {
  progress: LoadProgress[];
  streamed: TokenEvent[];
  report: GenerationReport;
  specpipe: GenerationReport;
  aborted: GenerationReport;
  afterDispose: { name: string; code: string; message: string };
}

/** Load with progress, stream a generation, run specpipe on the same seed, abort one, use after dispose. */
export async function streamAndAbort(): Promise<StreamOutcome> {
  const progress: LoadProgress[] = [];
  const single = createEngine({ model: TARGET });
  await single.load({ onProgress: (p) => progress.push(p) });
  const request = { prompt: 'The whale', maxNewTokens: 24, mode: 'single' as const, sampling: DEFAULT_SAMPLING };
  const run = single.generate(request);
  const streamed: TokenEvent[] = [];
  for await (const t of run) streamed.push(t);
  const report = await run.report;

  const ac = new AbortController();
  const long = single.generate({ ...request, maxNewTokens: 400 }, { signal: ac.signal, onToken: (t) => t.index === 3 && ac.abort() });
  const aborted = await long.report;
  single.dispose();
  let afterDispose = { name: '', code: '', message: '' };
  try {
    await single.generate(request).report;
  } catch (e) {
    const err = e as Error & { code?: string };
    afterDispose = { name: err.name, code: err.code ?? '', message: err.message };
  }

  const pipelined = createEngine({ model: TARGET, draft: DRAFT, stages: 2 });
  await pipelined.load();
  const specpipe = await pipelined.generate({ ...request, mode: 'specpipe', width: 2 }).report;
  pipelined.dispose();
  return { progress, streamed, report, specpipe, aborted, afterDispose };
}

let held: { engine: TabEngine; phases: { phase: EnginePhase; error: string | null; errorName: string | null }[] } | null = null;

/** Loads an engine and keeps it, recording its phase changes (for the device-loss test). */
export async function loadAndHold(): Promise<void> {
  const phases: { phase: EnginePhase; error: string | null; errorName: string | null }[] = [];
  const engine = createEngine({ model: TARGET, onPhase: (phase, error) => phases.push({ phase, error: error?.message ?? null, errorName: error?.name ?? null }) });
  await engine.load();
  held = { engine, phases };
}

export function heldPhases(): { phase: EnginePhase; error: string | null; errorName: string | null }[] {
  return held?.phases ?? [];
}

/** What generate() does on the held engine now: the error's name and message, or 'ok'. */
export async function generateOnHeld(): Promise<string> {
  try {
    await held!.engine.generate({ prompt: 'The whale', maxNewTokens: 4, mode: 'single', sampling: DEFAULT_SAMPLING }).report;
    return 'ok';
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
}
