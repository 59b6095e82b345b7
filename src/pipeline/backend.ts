// The names of the stage backends and `--backend`'s parsing: no imports of either backend, so the
// command line (plain Node, no WGSL loader) can check its arguments.
import { BadRequestError } from '../common/errors.ts';

/** Which implementation computes a stage: WGSL kernels on WebGPU, or C kernels in WebAssembly on the CPU. */
export type StageBackend = 'webgpu' | 'wasm';

/** A backend, or `auto`: measure both at start-up and take the faster. */
export type BackendChoice = 'auto' | StageBackend;

/** Every accepted value of `--backend`. */
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'webgpu', 'wasm'];

/** One choice for every stage, or a backend per stage in order (a mix, e.g. ['webgpu', 'wasm']). */
export type BackendSetting = BackendChoice | readonly StageBackend[];

/**
 * The setting named by `value`: auto, webgpu, wasm, or a comma-separated backend per stage such as
 * `webgpu,wasm` (undefined: `fallback`).
 * @throws BadRequestError for anything else.
 */
export function parseBackend(value: string | undefined, fallback: BackendChoice = 'webgpu'): BackendSetting {
  if (value === undefined) return fallback;
  const parts = value.split(',');
  const ok = parts.length === 1 ? BACKEND_CHOICES : BACKEND_CHOICES.filter((b) => b !== 'auto');
  if (!parts.every((p) => (ok as readonly string[]).includes(p))) {
    throw new BadRequestError(`backend must be one of ${BACKEND_CHOICES.join(', ')}, or webgpu/wasm per stage separated by commas (got ${JSON.stringify(value)})`);
  }
  return parts.length === 1 ? (value as BackendChoice) : (parts as StageBackend[]);
}
