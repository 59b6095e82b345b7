// `--backend auto|webgpu|wasm`: which implementation computes this tab's (or host's) stages. `auto`
// runs the start-up speed probe on both (the same one-row f32 matvec) and takes the faster, so a tab
// on a software adapter (SwiftShader) serves on the CPU backend and a tab with a real GPU on WebGPU.
import type { GpuContext } from '../gpu/device.ts';
import type { BackendChoice, BackendSetting, StageBackend } from '../pipeline/backend.ts';
import { BadRequestError } from '../common/errors.ts';
import { measureWasmMatvecGbps } from '../cpu/speed.ts';
import { availableThreads } from '../cpu/wasm-kernels.ts';
import { measureMatvecGbps } from './speed-probe.ts';

/** The backend chosen and why: the probe's figures when `auto` measured. */
export interface BackendDecision {
  backend: StageBackend;
  /** GB/s of the one-row f32 matvec on each backend (auto only). */
  gbps?: Record<StageBackend, number>;
}

/** Resolves `auto` by measuring both backends on this device (wasm without one); a named backend is taken as is. */
export async function chooseBackend(choice: BackendChoice, ctx: GpuContext | null): Promise<BackendDecision> {
  if (choice !== 'auto') return { backend: choice };
  if (!ctx) return { backend: 'wasm' };
  const gbps = { webgpu: await measureMatvecGbps(ctx), wasm: await measureWasmMatvecGbps() };
  return { backend: gbps.wasm > gbps.webgpu ? 'wasm' : 'webgpu', gbps };
}

/**
 * The backend of each of `stages` stages in one tab, and the adapter text reports show for them.
 * @throws BadRequestError when a per-stage list does not name one backend per stage.
 */
export async function planBackends(setting: BackendSetting, stages: number, ctx: GpuContext, threads = 1): Promise<{ backends: StageBackend[]; adapter: string }> {
  if (typeof setting !== 'string') {
    if (setting.length !== stages) throw new BadRequestError(`${setting.length} backends (${setting.join(', ')}) for ${stages} stages: name one per stage`);
    return { backends: [...setting], adapter: `stages on ${setting.join(', ')}; webgpu: ${ctx.description}; ${describeBackend({ backend: 'wasm' }, '', threads)}` };
  }
  const d = await chooseBackend(setting, ctx);
  return { backends: new Array<StageBackend>(stages).fill(d.backend), adapter: describeBackend(d, ctx.description, threads) };
}

/** The probe's GB/s on the chosen backend (measured now when the choice was named, not `auto`). */
export async function backendSpeed(d: BackendDecision, ctx: GpuContext | null): Promise<number> {
  return d.gbps?.[d.backend] ?? (d.backend === 'wasm' || !ctx ? measureWasmMatvecGbps() : measureMatvecGbps(ctx));
}

/**
 * What reports show as the adapter of stages on this decision (a named webgpu: the GPU's
 * description as before); `threads`: the CPU backend's threads asked (those this page allows are shown).
 */
export function describeBackend(d: BackendDecision, gpuDescription: string, threads = 1): string {
  if (!d.gbps && d.backend === 'webgpu') return gpuDescription;
  const n = availableThreads(threads);
  const base = d.backend === 'wasm' ? `wasm: WebAssembly SIMD128 on the CPU, ${n} thread${n === 1 ? '' : 's'}` : `webgpu: ${gpuDescription}`;
  return d.gbps ? `${base} (backend auto: wasm ${d.gbps.wasm.toFixed(2)} GB/s, webgpu ${d.gbps.webgpu.toFixed(2)} GB/s matvec)` : base;
}
