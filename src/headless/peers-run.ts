// Page side of `npm run bench:peers`: one engine configuration per fresh tab (thread counts and
// execution providers are fixed per page by the peer libraries), the same prompt ids, greedy, and
// the same timing for every engine: time between tokens = (last token's time - first token's time)
// / (tokens - 1), the definition TabEngine reports (src/speculative/metrics.ts).
import type * as Ort from 'onnxruntime-web';
import { Wllama } from '@wllama/wllama';
import wllamaSingleUrl from '@wllama/wllama/esm/single-thread/wllama.wasm?url';
import wllamaMultiUrl from '@wllama/wllama/esm/multi-thread/wllama.wasm?url';
import { createEngine } from '../app/create-engine.ts';
import { BadRequestError } from '../common/errors.ts';
import { percentile } from '../common/numerics.ts';
import type { StageBackend } from '../pipeline/backend.ts';

/** Shape of the exported ONNX graph's KV cache (from the model's config.json). */
export interface KvShape {
  layers: number;
  kvHeads: number;
  headDim: number;
}

/** One engine configuration the bench runs. */
export type PeerEngineSpec =
  | { kind: 'specpipe'; backend: StageBackend; modelUrl: string; /** WASM: threads per matmul (default 1). */ threads?: number }
  | { kind: 'ort'; ep: 'wasm' | 'webgpu'; threads: number; onnxUrl: string; kv: KvShape }
  | { kind: 'wllama'; ggufUrl: string; threads: number };

/** One measurement: an engine decoding `newTokens` greedy tokens after `promptIds`. */
export interface PeerRunRequest {
  engine: PeerEngineSpec;
  promptIds: number[];
  newTokens: number;
}

/** What one engine produced, with what actually ran (threads granted, adapter). */
export interface PeerRunResult {
  tokens: number[];
  msPerToken: number;
  /** Median time between tokens: steady state, less swayed by other work on a shared machine. */
  msPerTokenP50: number;
  /** Prompt in, first token out. */
  firstTokenMs: number;
  loadMs: number;
  /** What ran, in the engine's own terms (threads it reports, execution provider, adapter). */
  ran: string;
}

/** Feeds `ids` at positions `start`..; resolves to the greedy next token. */
type Step = (ids: number[], start: number) => Promise<number>;

async function greedyDecode(promptIds: number[], newTokens: number, step: Step): Promise<Pick<PeerRunResult, 'tokens' | 'msPerToken' | 'msPerTokenP50' | 'firstTokenMs'>> {
  const t0 = performance.now();
  const tokens = [await step(promptIds, 0)];
  const times = [performance.now()];
  while (tokens.length < newTokens) {
    tokens.push(await step([tokens[tokens.length - 1]], promptIds.length + tokens.length - 1));
    times.push(performance.now());
  }
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  return { tokens, msPerToken: (times[times.length - 1] - times[0]) / gaps.length, msPerTokenP50: percentile(gaps, 0.5) ?? 0, firstTokenMs: times[0] - t0 };
}

function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

async function runSpecpipe(spec: Extract<PeerEngineSpec, { kind: 'specpipe' }>, req: PeerRunRequest): Promise<PeerRunResult> {
  const engine = createEngine({ model: spec.modelUrl, backend: spec.backend, wasmThreads: spec.threads, maxContext: req.promptIds.length + req.newTokens + 1 });
  try {
    await engine.load();
    const { report } = engine.generate({ promptIds: req.promptIds, maxNewTokens: req.newTokens, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 }, mode: 'single' });
    const r = await report;
    const t = r.timings;
    if (t.tbtMeanMs === null || t.tbtP50Ms === null || t.ttftMs === null) throw new BadRequestError(`specpipe-mesh produced ${r.tokens.length} token(s); the bench needs at least 2`);
    return { tokens: r.tokens, msPerToken: t.tbtMeanMs, msPerTokenP50: t.tbtP50Ms, firstTokenMs: t.ttftMs, loadMs: t.loadMs, ran: spec.backend === 'webgpu' ? `webgpu: ${r.adapter}` : r.adapter };
  } finally {
    engine.dispose();
  }
}

async function runOrt(spec: Extract<PeerEngineSpec, { kind: 'ort' }>, req: PeerRunRequest): Promise<PeerRunResult> {
  // Each build registers only its providers; the WASM build is the one a CPU-only user would ship.
  const ort: typeof Ort = spec.ep === 'webgpu' ? await import('onnxruntime-web/webgpu') : await import('onnxruntime-web/wasm');
  ort.env.wasm.numThreads = spec.threads;
  ort.env.logLevel = 'error';
  const tLoad = performance.now();
  const present = Array.from({ length: spec.kv.layers }, (_, i) => [`present_key_${i}`, `present_value_${i}`]).flat();
  const session = await ort.InferenceSession.create(spec.onnxUrl, {
    executionProviders: [spec.ep],
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    // As transformers.js runs decoders on WebGPU: the KV cache stays on the GPU between steps.
    preferredOutputLocation: spec.ep === 'webgpu' ? Object.fromEntries(present.map((n) => [n, 'gpu-buffer' as const])) : undefined,
  });
  const loadMs = performance.now() - tLoad;
  const { layers, kvHeads, headDim } = spec.kv;
  let past: Record<string, Ort.Tensor> = {};
  for (let i = 0; i < layers; i++) {
    for (const kind of ['key', 'value']) past[`past_${kind}_${i}`] = new ort.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, headDim]);
  }
  const int64 = (v: number[]): Ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(v, BigInt), [1, v.length]);
  try {
    const out = await greedyDecode(req.promptIds, req.newTokens, async (ids, start) => {
      const r = await session.run({ input_ids: int64(ids), position_ids: int64(ids.map((_, i) => start + i)), ...past });
      for (const t of Object.values(past)) t.dispose();
      past = Object.fromEntries(present.map((n) => [n.replace('present_', 'past_'), r[n]]));
      return argmax(r.logits.data as Float32Array);
    });
    const threads = spec.ep === 'wasm' ? `, ${ort.env.wasm.numThreads} thread(s) asked, crossOriginIsolated ${String(self.crossOriginIsolated)}` : '';
    return { ...out, loadMs, ran: `onnxruntime-web ${ort.env.versions.web ?? ''} ${spec.ep} EP${threads}` };
  } finally {
    for (const t of Object.values(past)) t.dispose();
    await session.release();
  }
}

async function runWllama(spec: Extract<PeerEngineSpec, { kind: 'wllama' }>, req: PeerRunRequest): Promise<PeerRunResult> {
  const w = new Wllama({ 'single-thread/wllama.wasm': wllamaSingleUrl, 'multi-thread/wllama.wasm': wllamaMultiUrl }, { suppressNativeLog: true });
  const tLoad = performance.now();
  const res = await fetch(spec.ggufUrl);
  if (!res.ok) throw new BadRequestError(`${spec.ggufUrl}: HTTP ${res.status}`);
  await w.loadModel([await res.blob()], { n_threads: spec.threads, n_ctx: req.promptIds.length + req.newTokens + 8, n_batch: Math.max(512, req.promptIds.length) });
  // Greedy: temperature 0 is llama.cpp's greedy sampler; no repetition penalty.
  await w.samplingInit({ temp: 0, top_k: 1, penalty_repeat: 1 });
  const loadMs = performance.now() - tLoad;
  try {
    const out = await greedyDecode(req.promptIds, req.newTokens, async (ids) => {
      await w.decode(ids, {});
      return (await w.samplingSample()).token;
    });
    return { ...out, loadMs, ran: `wllama (llama.cpp), ${w.getNumThreads()} thread(s), multithread build ${String(w.isMultithread())}` };
  } finally {
    await w.exit();
  }
}

/** Runs one engine configuration on the prompt ids (call once per fresh page). */
export async function runPeer(req: PeerRunRequest): Promise<PeerRunResult> {
  if (req.newTokens < 2) throw new BadRequestError('newTokens must be at least 2 (time between tokens needs two tokens)');
  if (req.promptIds.length === 0) throw new BadRequestError('promptIds is empty');
  switch (req.engine.kind) {
    case 'specpipe':
      return runSpecpipe(req.engine, req);
    case 'ort':
      return runOrt(req.engine, req);
    case 'wllama':
      return runWllama(req.engine, req);
  }
}
