// The CPU backend's side of the start-up speed probe (src/app/speed-probe.ts measures WebGPU's): the
// same one-row f32 matrix-vector product, through the WebAssembly kernel.
import { FORMAT_CODE, WasmKernels } from './wasm-kernels.ts';

/** Weight bytes read per ms by one-row f32 matrix-vector products in WebAssembly (GB/s), median of `reps` runs. */
export async function measureWasmMatvecGbps(size = 1024, reps = 5): Promise<number> {
  const k = await WasmKernels.create();
  const weights = new Float32Array(size * size).map((_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5);
  const w = k.put(weights);
  const x = k.put(new Float32Array(size).fill(0.01));
  const y = k.alloc(size * 4);
  const run = (n: number): number => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) k.fn.matmul(x, 1, size, w, FORMAT_CODE.f32, size, y, 0, 0, 0, size);
    return (performance.now() - t0) / n;
  };
  run(2); // compile tiers and first touch
  const times: number[] = [];
  for (let i = 0; i < reps; i++) times.push(run(4));
  times.sort((a, b) => a - b);
  return weights.byteLength / (Math.max(1e-3, times[Math.floor(reps / 2)]) * 1e6);
}
