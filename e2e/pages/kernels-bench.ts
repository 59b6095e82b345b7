// Browser side of `npm run bench:kernels`: achieved bandwidth of the matrix-vector kernel vs a
// plain vec4 grid-stride copy, on whatever adapter the page gets.
import type { WeightFormat } from '../../src/model/types.ts';
import { createGpuContext } from '../../src/gpu/device.ts';
import { Kernels, defaultLanes, matmulGrid, matmulParams, storageBuffer, emptyBuffer } from '../../src/gpu/kernels.ts';
import { prng, randomArray, hostTensor } from '../../src/gpu/testing.ts';

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
}

/** Median wall time of one dispatch, measured as N dispatches in one command buffer. */
async function timeDispatch(device: GPUDevice, encode: (pass: GPUComputePassEncoder) => void, seconds: number, reps: number): Promise<number> {
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
  const times: number[] = [];
  for (let r = 0; r < reps; r++) times.push((await run(n)) / n);
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

export async function benchKernels(o: BenchOptions = {}): Promise<BenchResult> {
  const ctx = await createGpuContext();
  const dev = ctx.device;
  const size = o.size ?? 2048;
  const seconds = o.seconds ?? 0.4;
  const reps = o.reps ?? 5;
  const rand = prng(1);

  // Copy: read + write of size*size f32.
  const bytes = size * size * 4;
  const k0 = new Kernels(ctx);
  const src = storageBuffer(dev, randomArray(size * size, rand));
  const dst = emptyBuffer(dev, bytes);
  const copyPipe = k0.copy();
  const copyGroup = k0.bind(copyPipe, [src, dst]);
  let best: BenchRow | undefined;
  for (const groups of [64, 256, 1024]) {
    const ms = await timeDispatch(dev, (p) => {
      p.setPipeline(copyPipe);
      p.setBindGroup(0, copyGroup);
      p.dispatchWorkgroups(groups);
    }, seconds, reps);
    const row = { kernel: `copy (vec4 grid-stride, ${groups} workgroups)`, ms, gbps: (2 * bytes) / (ms * 1e6) };
    if (!best || row.gbps > best.gbps) best = row;
  }
  const copy = best!;

  const matvec: BenchRow[] = [];
  const wValues = randomArray(size * size, rand, 1 / Math.sqrt(size));
  for (const format of o.formats ?? (['f32', 'f16'] as WeightFormat[])) {
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
        const group = k.bind(pipe, [matmulParams(k, size, size), meta, x, w, w, emptyBuffer(dev, 16), y]);
        const grid = matmulGrid(size, lanes);
        const ms = await timeDispatch(dev, (p) => {
          p.setPipeline(pipe);
          p.setBindGroup(0, group);
          p.dispatchWorkgroups(...grid);
        }, seconds, reps);
        const gbps = wt.data.byteLength / (ms * 1e6);
        matvec.push({ kernel: 'matvec', format, rows: R, lanes, subgroups: k.subgroups, ms, gbps, ratio: gbps / copy.gbps });
        x.destroy();
        y.destroy();
        meta.destroy();
      }
    }
    w.destroy();
  }
  src.destroy();
  dst.destroy();
  dev.destroy();
  return {
    adapter: { description: ctx.description, features: { ...ctx.features }, info: { ...ctx.info } },
    size,
    method: `wall time (performance.now around submit + onSubmittedWorkDone) of N back-to-back dispatches in one command buffer, median of ${reps}`,
    copy,
    matvec,
  };
}
