// A short kernel benchmark a stage tab runs when it joins: the matrix-vector product that dominates
// decoding, on this tab's adapter. The leader splits layers in proportion to the result.
import type { GpuContext } from '../gpu/device.ts';
import { Kernels, emptyBuffer, matmulGrid, matmulParams, storageBuffer } from '../gpu/kernels.ts';

/** Weight bytes read per ms by one-row f32 matrix-vector products (GB/s), median of `reps` runs. */
export async function measureMatvecGbps(ctx: GpuContext, size = 1024, reps = 5): Promise<number> {
  const dev = ctx.device;
  const k = new Kernels(ctx);
  const weights = new Float32Array(size * size).map((_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5);
  const buffers = [
    matmulParams(k, size, size),
    storageBuffer(dev, Uint32Array.from([1, 0, 0, 0])),
    storageBuffer(dev, new Float32Array(size).fill(0.01)),
    storageBuffer(dev, weights),
    emptyBuffer(dev, 16),
    emptyBuffer(dev, size * 4),
  ];
  const [params, meta, x, w, bias, y] = buffers;
  const pipe = k.matmul({ format: 'f32' });
  const group = k.bind(pipe, [params, meta, x, w, w, bias, y]);
  const grid = matmulGrid(size, k.lanes);
  const run = async (n: number): Promise<number> => {
    const enc = dev.createCommandEncoder();
    const pass = enc.beginComputePass();
    for (let i = 0; i < n; i++) {
      pass.setPipeline(pipe);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(...grid);
    }
    pass.end();
    const t0 = performance.now();
    dev.queue.submit([enc.finish()]);
    await dev.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / n;
  };
  try {
    await run(2); // compile and first touch
    const times: number[] = [];
    for (let i = 0; i < reps; i++) times.push(await run(4));
    times.sort((a, b) => a - b);
    return weights.byteLength / (Math.max(1e-3, times[Math.floor(reps / 2)]) * 1e6);
  } finally {
    for (const b of buffers) b.destroy();
  }
}
