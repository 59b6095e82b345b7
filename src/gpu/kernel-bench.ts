// Browser side of `npm run bench:kernels`: achieved bandwidth of the matrix-vector kernel (f32, f16,
// Q8_0 and Q4_0 weights; GB/s = bytes of weights or blocks read / time) vs a plain vec4 grid-stride
// copy, on whatever adapter the page gets.
import type { WeightFormat } from '../model/types.ts';
import { isQuantFormat } from '../model/quant.ts';
import { createGpuContext } from './device.ts';
import { Kernels, META, attentionParams, defaultLanes, matmulGrid, matmulParams, storageBuffer, emptyBuffer } from './kernels.ts';
import { seededRandom } from '../common/numerics.ts';
import { randomArray, hostTensor, tinyLlamaSpec, randomLlamaTensors, getter } from './synthetic-model.ts';
import { Stage, type StageOptions } from './stage.ts';
import type { RowBatch } from './types.ts';

const DEFAULT_FORMATS: WeightFormat[] = ['f32', 'f16', 'q8_0', 'q4_0'];

export interface BenchOptions {
  size?: number;
  rows?: number[];
  formats?: WeightFormat[];
  /** Threads per matmul output (divides 64). */
  lanes?: number[];
  /** Also measure the matmul without subgroup operations (workgroup-memory reduction). */
  noSubgroups?: boolean;
  /** Seconds of GPU work per measurement (approximately). */
  seconds?: number;
  reps?: number;
  /** Also time whole-stage forwards of a random model (default true). */
  stage?: boolean;
  /** Also compare decode paths (unfused / fused / fused + f16 KV) on the bundled target's shape (default true). */
  decode?: boolean;
  /** Also time attention at these context lengths, plain vs split-K (default 64, 1024, 4096; [] skips). */
  contexts?: number[];
}

/** A prompt of `n` rows in slots 0..n-1, each attending to the ones before it (a context to decode after). */
function promptBatch(n: number, vocabSize: number): RowBatch {
  return {
    tokens: Int32Array.from({ length: n }, (_, i) => (i * 31) % vocabSize),
    positions: Int32Array.from({ length: n }, (_, i) => i),
    slots: Int32Array.from({ length: n }, (_, i) => i),
    ancestors: Array.from({ length: n }, (_, i) => Int32Array.from({ length: i }, (_, j) => j)),
  };
}

/** One kernel path of the decode comparison: ms per one-row forward, interleaved with the others. */
export interface DecodePath {
  path: string;
  fused: boolean;
  /** f16 matrices uploaded as f32. */
  widenF16: boolean;
  matmulWorkgroup: number;
  kvDtype: 'f32' | 'f16';
  /** Median ms per forward (one row, 64 committed tokens, greedy token read back). */
  ms: number;
  /** Fastest forward: on a loaded machine, the closest to the path's own cost. */
  minMs: number;
  /** Median of (the first path's ms / this path's ms) over interleaved rounds. */
  speedup: number;
  /** The first path's minMs / this path's minMs. */
  minSpeedup: number;
  dispatchesPerLayer: number;
  /** Dispatches of the whole forward (embed, layers, head, sample). */
  dispatches: number;
  kvBytes: number;
}

/** Attention of one row over `context` entries: the plain kernel vs split-K (first pass + reduce). */
export interface AttentionBench {
  context: number;
  variant: string;
  kvDtype: 'f32' | 'f16';
  plainMs: number;
  splitMs: number;
  splits: number;
}

export interface StageBench {
  model: string;
  format: WeightFormat;
  rows: number;
  context: number;
  /** Median ms per forward (upload + one command buffer + readback of tokens). */
  ms: number;
  /** Wall time per kind of step, one dispatch per submit (so with per-submit overhead). */
  profile?: { step: string; ms: number; count: number }[];
}

export interface BenchRow {
  kernel: string;
  format?: WeightFormat;
  rows?: number;
  lanes?: number;
  subgroups?: boolean;
  ms: number;
  gbps: number;
  /** gbps / copy gbps. */
  ratio?: number;
}

export interface BenchResult {
  adapter: { description: string; features: Record<string, boolean>; info: Record<string, unknown> };
  size: number;
  method: string;
  copy: BenchRow;
  matvec: BenchRow[];
  stage: StageBench[];
  /** The 1-row f32 matrix-vector kernel's bandwidth / the copy kernel's (lanes: the adapter's default). */
  gemvCopyRatio?: number;
  /** Dispatches per decoder layer of the default (fused) path. */
  dispatchesPerLayer?: number;
  /** The decode paths compared on the bundled target's shape (random weights). */
  decode?: { model: string; rounds: number; paths: DecodePath[] };
  attention?: AttentionBench[];
}

/** The bundled demo-target's shape (public/models/demo-target/config.json). */
const DEMO_TARGET = { hiddenSize: 256, intermediateSize: 688, numLayers: 8, numHeads: 8, numKvHeads: 4, headDim: 32, vocabSize: 4096, maxPositions: 1024 };

/**
 * The unfused path, the fused path and the fused path with an f16 KV cache, on a random model of
 * the demo-target's shape with f16 weights (as the bundled one is stored): one-row forwards after a
 * 64-token prompt, the paths taking turns within each round so that a shared machine's load hits
 * them alike.
 */
async function benchDecode(ctx: Awaited<ReturnType<typeof createGpuContext>>, rounds: number): Promise<NonNullable<BenchResult['decode']>> {
  const spec = tinyLlamaSpec(DEMO_TARGET);
  const tensors = getter(randomLlamaTensors(spec, 3, 'f16'));
  const role = { layers: { start: 0, end: spec.numLayers }, embed: true, head: true };
  const variants: { path: string; opts: Partial<StageOptions> }[] = [
    { path: 'before issue 13: unfused, f16 in kernels, 64-thread groups', opts: { fused: false, widenF16: false, matmulWorkgroup: 64 } },
    { path: 'default: fused (+ adapter defaults)', opts: {} },
    { path: 'default with an f16 KV cache', opts: { kvDtype: 'f16' } },
    { path: 'unfused with the same adapter defaults', opts: { fused: false } },
  ];
  const ctxLen = 64;
  const stages: Stage[] = [];
  for (const v of variants) {
    const st = await Stage.create(ctx, spec, role, tensors, { numSlots: 256, ...v.opts });
    const pre = promptBatch(ctxLen, spec.vocabSize);
    await st.forward(pre);
    st.kv.commit(pre.slots);
    stages.push(st);
  }
  const one: RowBatch = { tokens: Int32Array.of(5), positions: Int32Array.of(ctxLen), slots: Int32Array.of(100), ancestors: [new Int32Array(0)] };
  const times: number[][] = variants.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < stages.length; i++) {
      const t0 = performance.now();
      await stages[i].forward(one);
      times[i].push(performance.now() - t0);
    }
  }
  const paths = variants.map((v, i): DecodePath => ({
    path: v.path,
    fused: stages[i].fused,
    widenF16: stages[i].widenF16,
    matmulWorkgroup: stages[i].matmulWorkgroup,
    kvDtype: stages[i].kvDtype,
    ms: median(times[i]),
    minMs: Math.min(...times[i]),
    speedup: median(times[0].map((t, r) => t / times[i][r])),
    minSpeedup: Math.min(...times[0]) / Math.min(...times[i]),
    dispatchesPerLayer: stages[i].dispatchesPerLayer,
    dispatches: stages[i].dispatchCount(one),
    kvBytes: stages[i].kvBytes,
  }));
  for (const st of stages) st.destroy();
  return { model: `random weights (f16) of the bundled demo-target's shape: hidden ${spec.hiddenSize}, ${spec.numLayers} layers, vocab ${spec.vocabSize}; 256 KV slots`, rounds, paths };
}

/** One row's attention over `context` KV entries (random K/V): the plain kernel vs split-K + reduce. */
async function benchAttention(ctx: Awaited<ReturnType<typeof createGpuContext>>, contexts: number[], seconds: number): Promise<AttentionBench[]> {
  const dev = ctx.device;
  const rand = seededRandom(4);
  const { numHeads: nH, numKvHeads: nKv, headDim: hd } = DEMO_TARGET;
  const out: AttentionBench[] = [];
  const splitMin = 256;
  for (const context of contexts) {
    for (const kvDtype of ['f32', 'f16'] as const) {
      const k = new Kernels(ctx);
      const kvDim = nKv * hd;
      const poolBytes = context * kvDim * (kvDtype === 'f16' ? 2 : 4);
      const K = storageBuffer(dev, randomArray(poolBytes / 4, rand));
      const V = storageBuffer(dev, randomArray(poolBytes / 4, rand));
      if (kvDtype === 'f16') {
        // Random halves in [0.5, 2): valid f16 pairs.
        for (const b of [K, V]) dev.queue.writeBuffer(b, 0, Uint32Array.from({ length: poolBytes / 4 }, () => (0x3800 + Math.floor(rand() * 0x800)) * 0x10001));
      }
      // One row attending to slots 0 .. context - 1 (committed 0 .. context - 2, then its own).
      const rowsOff = META.committedOff + context;
      const meta = new Uint32Array(rowsOff + META.rowStride);
      meta[0] = 1;
      meta[1] = context - 1;
      for (let i = 0; i < context - 1; i++) meta[META.committedOff + i] = i;
      meta[rowsOff + 2] = context - 1;
      meta[rowsOff + 3] = rowsOff + META.rowStride;
      const metaBuf = storageBuffer(dev, meta);
      const qkv = storageBuffer(dev, randomArray((nH + 2 * nKv) * hd, rand));
      const partOff = nH * hd;
      const att = emptyBuffer(dev, (partOff + nH * 16 * (hd + 4)) * 4);
      const params = attentionParams(k, { numHeads: nH, numKvHeads: nKv, headDim: hd, rowsOff, split: { min: splitMin, partOff } });
      const kv16 = kvDtype === 'f16';
      const plain = k.attention({ kv16 });
      const split = k.attention({ kv16, split: true });
      const reduce = k.attentionReduce();
      await k.ready();
      const res = [params, metaBuf, qkv, K, V, att];
      const gPlain = k.bind(plain, res);
      const gSplit = k.bind(split, res);
      const gReduce = k.bind(reduce, [params, metaBuf, att]);
      const tPlain = await timer(dev, (p) => {
        p.setPipeline(plain);
        p.setBindGroup(0, gPlain);
        p.dispatchWorkgroups(...k.attentionGrid(1, nH));
      }, seconds);
      const tSplit = await timer(dev, (p) => {
        p.setPipeline(split);
        p.setBindGroup(0, gSplit);
        p.dispatchWorkgroups(...k.attentionGrid(1, nH, true));
        p.setPipeline(reduce);
        p.setBindGroup(0, gReduce);
        p.dispatchWorkgroups(Math.ceil((nH * hd) / 4 / 64));
      }, seconds);
      const a: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < 3; i++) {
        a.push(await tPlain());
        b.push(await tSplit());
      }
      out.push({ context, variant: k.attentionVariant, kvDtype, plainMs: median(a), splitMs: median(b), splits: Math.min(16, Math.max(1, Math.floor(context / splitMin))) });
      for (const x of [K, V, metaBuf, qkv, att, params]) x.destroy();
    }
  }
  return out;
}

/** Wall time of one dispatch, measured as N back-to-back dispatches in one command buffer. */
async function timer(device: GPUDevice, encode: (pass: GPUComputePassEncoder) => void, seconds: number): Promise<() => Promise<number>> {
  const run = async (n: number) => {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    for (let i = 0; i < n; i++) encode(pass);
    pass.end();
    const t0 = performance.now();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    return performance.now() - t0;
  };
  await run(2); // warm-up (pipeline compilation, first touch)
  const one = Math.max(0.05, (await run(3)) / 3);
  const n = Math.max(3, Math.min(500, Math.round((seconds * 1000) / one)));
  return async () => (await run(n)) / n;
}

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export async function benchKernels(o: BenchOptions = {}): Promise<BenchResult> {
  const ctx = await createGpuContext();
  const dev = ctx.device;
  const size = o.size ?? 2048;
  const seconds = o.seconds ?? 0.4;
  const reps = o.reps ?? 5;
  const rand = seededRandom(1);

  // Copy: read + write of size*size f32.
  const bytes = size * size * 4;
  const k0 = new Kernels(ctx);
  const src = storageBuffer(dev, randomArray(size * size, rand));
  const dst = emptyBuffer(dev, bytes);
  const copyPipe = k0.copy();
  await k0.ready();
  const copyGroup = k0.bind(copyPipe, [src, dst]);
  let copyTimer: (() => Promise<number>) | undefined;
  let copyName = '';
  let bestMs = Infinity;
  for (const groups of [64, 256, 1024, 4096, 16384]) {
    const t = await timer(dev, (p) => {
      p.setPipeline(copyPipe);
      p.setBindGroup(0, copyGroup);
      p.dispatchWorkgroups(groups);
    }, seconds);
    const ms = Math.min(await t(), await t());
    if (ms < bestMs) {
      bestMs = ms;
      copyTimer = t;
      copyName = `copy (vec4 grid-stride, ${groups} workgroups)`;
    }
  }
  // The machine may be shared: each matvec measurement is paired with a copy measurement taken
  // right before it, and the ratio is the median of the per-pair ratios.
  const copyTimes: number[] = [];
  const matvec: BenchRow[] = [];
  const wValues = randomArray(size * size, rand, 1 / Math.sqrt(size));
  for (const format of o.formats ?? DEFAULT_FORMATS) {
    const wt = hostTensor('w', [size, size], wValues, format);
    const w = storageBuffer(dev, wt.data);
    const variants = (o.lanes ?? [defaultLanes(ctx)]).flatMap((lanes) => (o.noSubgroups && lanes > 1 ? [{ lanes, sg: true }, { lanes, sg: false }] : [{ lanes, sg: true }]));
    for (const { lanes, sg } of variants) {
      const k = new Kernels(ctx, { lanes, subgroups: sg });
      for (const R of o.rows ?? [1, 4, 16]) {
        const meta = storageBuffer(dev, Uint32Array.from([R, 0, 0, 0]));
        const x = storageBuffer(dev, randomArray(R * size, rand));
        const y = emptyBuffer(dev, R * size * 4);
        const pipe = k.matmul({ format });
        await k.ready();
        const group = k.bind(pipe, [matmulParams(k, size, size, format), meta, x, w, w, emptyBuffer(dev, 16), y]);
        const grid = matmulGrid(size, lanes);
        const t = await timer(dev, (p) => {
          p.setPipeline(pipe);
          p.setBindGroup(0, group);
          p.dispatchWorkgroups(...grid);
        }, seconds);
        const mss: number[] = [];
        const ratios: number[] = [];
        for (let i = 0; i < reps; i++) {
          const tc = await copyTimer!();
          const tm = await t();
          copyTimes.push(tc);
          mss.push(tm);
          ratios.push(wt.data.byteLength / tm / ((2 * bytes) / tc));
        }
        const ms = median(mss);
        matvec.push({ kernel: 'matvec', format, rows: R, lanes, subgroups: k.subgroups, ms, gbps: wt.data.byteLength / (ms * 1e6), ratio: median(ratios) });
        x.destroy();
        y.destroy();
        meta.destroy();
      }
    }
    w.destroy();
  }
  src.destroy();
  dst.destroy();
  const copyMs = median(copyTimes);
  const copy: BenchRow = { kernel: copyName, ms: copyMs, gbps: (2 * bytes) / (copyMs * 1e6) };

  // Whole stage: embed + all layers + head + greedy pick, a random Llama with a 64-token context.
  const stage: StageBench[] = [];
  if (o.stage ?? true) {
    const spec = tinyLlamaSpec({ hiddenSize: 512, intermediateSize: 1408, numLayers: 8, numHeads: 8, numKvHeads: 4, headDim: 64, vocabSize: 8192, maxPositions: 1024 });
    const params = spec.numLayers * (spec.hiddenSize * (spec.hiddenSize * 2 + 2 * spec.numKvHeads * spec.headDim) + 3 * spec.hiddenSize * spec.intermediateSize) + 2 * spec.vocabSize * spec.hiddenSize;
    const model = `random Llama hidden ${spec.hiddenSize}, ${spec.numLayers} layers, vocab ${spec.vocabSize} (${(params / 1e6).toFixed(1)}M params)`;
    for (const format of o.formats ?? DEFAULT_FORMATS) {
      // q8_0 / q4_0: the projections quantized, the embedding and head f16 (as --quant loads them).
      const st = await Stage.create(ctx, spec, { layers: { start: 0, end: spec.numLayers }, embed: true, head: true }, getter(isQuantFormat(format) ? randomLlamaTensors(spec, 1, 'f16', format) : randomLlamaTensors(spec, 1, format)), { numSlots: 256 });
      const ctxLen = 64;
      const pre = promptBatch(ctxLen, spec.vocabSize);
      await st.forward(pre);
      st.kv.commit(pre.slots);
      for (const R of [1, 4, 16]) {
        const b: RowBatch = {
          tokens: Int32Array.from({ length: R }, (_, i) => i + 5),
          positions: new Int32Array(R).fill(ctxLen),
          slots: Int32Array.from({ length: R }, (_, i) => 100 + i),
          ancestors: Array.from({ length: R }, () => new Int32Array(0)),
        };
        await st.forward(b);
        const times: number[] = [];
        const n = Math.max(3, reps * 2);
        for (let i = 0; i < n; i++) {
          const t0 = performance.now();
          await st.forward(b);
          times.push(performance.now() - t0);
        }
        times.sort((a, c) => a - c);
        stage.push({ model, format, rows: R, context: ctxLen, ms: times[Math.floor(n / 2)], profile: await st.profile(b) });
      }
      st.destroy();
    }
  }
  const decode = (o.decode ?? true) ? await benchDecode(ctx, Math.max(5, reps * 4)) : undefined;
  const attention = await benchAttention(ctx, o.contexts ?? [64, 1024, 4096], seconds);
  dev.destroy();
  const gemv = matvec.find((m) => m.format === 'f32' && m.rows === 1 && m.lanes === defaultLanes(ctx) && m.subgroups === new Kernels(ctx).subgroups);
  return {
    adapter: { description: ctx.description, features: { ...ctx.features }, info: { ...ctx.info } },
    size,
    method: `wall time (performance.now around submit + onSubmittedWorkDone) of N back-to-back dispatches in one command buffer; medians of ${reps} runs, each matvec run paired with a copy run just before it (ratio = median of per-pair ratios)`,
    copy,
    matvec,
    stage,
    gemvCopyRatio: gemv?.ratio,
    dispatchesPerLayer: decode?.paths.find((p) => p.fused)?.dispatchesPerLayer,
    decode,
    attention,
  };
}
