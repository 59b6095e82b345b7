// The control block shared by the main thread and the matmul workers (Int32 words in the shared
// memory): the main thread writes a job's parameters, zeroes `done`, bumps `gen` and notifies; each
// worker computes its share of the outputs, adds 1 to `done`; the main thread, which computes the
// first share itself, spins until every worker has. A worker sees every generation exactly once:
// the next one is posted only after all have reported the last.

/** Word offsets in the control block. */
export const CTL = {
  /** Job generation (workers wait on it). */
  gen: 0,
  /** Workers done with the current generation. */
  done: 1,
  /** Set before a final `gen` bump: workers return. */
  stop: 2,
  /** The matmul's parameters: x, rows, in, w, fmt, out, y, bias, accumulate. */
  p: 3,
  words: 12,
} as const;

/** What a worker is started with. */
export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  /** Top of this worker's own stack region (the stack grows down). */
  stackTop: number;
  /** Byte offset of the control block. */
  ctl: number;
  /** This worker's share: outputs [index * chunk, (index + 1) * chunk) of `threads` shares (0 is the main thread's). */
  index: number;
  threads: number;
}

/** Outputs [o0, o1) of share `index` of `threads` (share 0 is the main thread's). */
export function shareOf(index: number, threads: number, out: number): [number, number] {
  const chunk = Math.ceil(out / threads);
  const o0 = Math.min(out, index * chunk);
  return [o0, Math.min(out, o0 + chunk)];
}
