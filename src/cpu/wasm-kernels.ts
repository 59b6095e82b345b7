// The CPU kernels (src/cpu/native/*.c, built by `npm run build:wasm`) instantiated over a memory this
// side owns: a bump allocator hands out 16-byte-aligned regions and grows the memory as needed.
// Every region is allocated once (at stage creation), so a forward allocates nothing. With threads
// (a cross-origin isolated page), the memory is shared and Workers compute shares of each matmul's
// outputs (pool-protocol.ts); each output is computed exactly as with one thread, so the results
// are bitwise the same.
import { KERNELS_MT_WASM_BASE64, KERNELS_WASM_BASE64 } from './kernels-wasm.ts';
import { CTL, shareOf, type WorkerInit } from './pool-protocol.ts';
import { once } from '../common/once.ts';
import { GpuLimitsError } from '../common/errors.ts';
import type { WeightFormat } from '../model/types.ts';

/** The C exports (pointers are byte offsets into the memory). */
export interface KernelExports {
  matmul(x: number, rows: number, inDim: number, w: number, fmt: number, outDim: number, y: number, bias: number, accumulate: number, o0: number, o1: number): void;
  embed(tokens: number, rows: number, E: number, fmt: number, H: number, out: number): void;
  rmsnorm(x: number, rows: number, H: number, w: number, eps: number, out: number): void;
  silu_mul(g: number, u: number, n: number): void;
  rope_kv(qkv: number, rows: number, positions: number, slots: number, table: number, nH: number, nKv: number, hd: number, K: number, V: number): void;
  attention(qkv: number, rows: number, lists: number, listOff: number, listLen: number, K: number, V: number, nH: number, nKv: number, hd: number, scale: number, scores: number, out: number): void;
  sample(logits: number, V: number, temp: number, topK: number, topP: number, u: number, p: number, keys: number, sums: number): number;
}

/** The weight-format codes of kernels.h. */
export const FORMAT_CODE: Record<WeightFormat, number> = { f32: 0, f16: 1, q8_0: 2, q4_0: 3 };

const PAGE = 65536;
/** wasm32 addresses 4 GiB. */
const MAX_PAGES = 65536;

const compiled = new Map<string, Promise<WebAssembly.Module>>();

/** The kernels' module (`threaded`: the shared-memory variant), compiled once per page or process. */
export function kernelsModule(threaded = false): Promise<WebAssembly.Module> {
  return once(compiled, threaded ? 'mt' : 'st', () => {
    const bin = atob(threaded ? KERNELS_MT_WASM_BASE64 : KERNELS_WASM_BASE64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return WebAssembly.compile(bytes);
  });
}

type View = Float32Array | Int32Array | Uint32Array | Uint16Array | Uint8Array;

/** Stack of each worker thread (the kernels use a few hundred bytes). */
const WORKER_STACK = 64 * 1024;

/** The threads a page can run the kernels on: `wanted` where it is cross-origin isolated and has Workers, else 1. */
export function availableThreads(wanted: number): number {
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  return isolated && typeof Worker !== 'undefined' ? Math.max(1, Math.floor(wanted)) : 1;
}

/** One instance of the kernels with its own memory (one per stage), and its worker threads if any. */
export class WasmKernels {
  private top: number;
  private workers: Worker[] = [];
  private ctl = 0;

  private constructor(
    readonly memory: WebAssembly.Memory,
    readonly fn: KernelExports,
    heapBase: number,
  ) {
    this.top = heapBase;
  }

  /** Threads that compute each matmul (this one included). */
  get threads(): number {
    return this.workers.length + 1;
  }

  /**
   * Instantiates the kernels over a fresh memory; with `threads` > 1 (see availableThreads) the
   * memory is shared and threads - 1 Workers start, each with its own instance and stack.
   */
  static async create(threads = 1): Promise<WasmKernels> {
    const n = availableThreads(threads);
    const mod = await kernelsModule(n > 1);
    const memory = n > 1 ? new WebAssembly.Memory({ initial: 2, maximum: MAX_PAGES, shared: true }) : new WebAssembly.Memory({ initial: 2 });
    const inst = await WebAssembly.instantiate(mod, { env: { memory } });
    const ex = inst.exports as unknown as KernelExports & { __heap_base: WebAssembly.Global };
    const k = new WasmKernels(memory, ex, Number(ex.__heap_base.value));
    if (n > 1) await k.startWorkers(mod, n);
    return k;
  }

  private async startWorkers(module: WebAssembly.Module, threads: number): Promise<void> {
    this.ctl = this.alloc(CTL.words * 4);
    const started: Promise<void>[] = [];
    for (let index = 1; index < threads; index++) {
      const stackTop = this.alloc(WORKER_STACK) + WORKER_STACK;
      const w = new Worker(new URL('./matmul-worker.ts', import.meta.url), { type: 'module', name: `specpipe cpu matmul ${index}` });
      this.workers.push(w);
      started.push(
        new Promise<void>((ready, fail) => {
          w.onmessage = () => ready();
          w.onerror = (e) => fail(new Error(`a CPU backend worker failed to start: ${e.message}`));
        }),
      );
      w.postMessage({ module, memory: this.memory, stackTop, ctl: this.ctl, index, threads } satisfies WorkerInit);
    }
    try {
      await Promise.all(started);
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  /**
   * y (+)= x W^T (+ bias) over all outputs: split across the threads (this one takes the first
   * share, then spins until the workers report), or in one call with one thread.
   */
  matmul(x: number, rows: number, inDim: number, w: number, fmt: number, outDim: number, y: number, bias: number, accumulate: number): void {
    if (!this.workers.length) {
      this.fn.matmul(x, rows, inDim, w, fmt, outDim, y, bias, accumulate, 0, outDim);
      return;
    }
    const c = new Int32Array(this.memory.buffer, this.ctl, CTL.words);
    c.set([x, rows, inDim, w, fmt, outDim, y, bias, accumulate], CTL.p);
    Atomics.store(c, CTL.done, 0);
    Atomics.add(c, CTL.gen, 1);
    Atomics.notify(c, CTL.gen);
    const [o0, o1] = shareOf(0, this.threads, outDim);
    this.fn.matmul(x, rows, inDim, w, fmt, outDim, y, bias, accumulate, o0, o1);
    // The main thread of a page may not Atomics.wait; the workers' shares take as long as this one.
    while (Atomics.load(c, CTL.done) < this.workers.length);
  }

  /** Stops the worker threads (the memory goes when the last reference does). */
  destroy(): void {
    if (!this.workers.length) return;
    const c = new Int32Array(this.memory.buffer, this.ctl, CTL.words);
    Atomics.store(c, CTL.stop, 1);
    Atomics.add(c, CTL.gen, 1);
    Atomics.notify(c, CTL.gen);
    for (const w of this.workers) w.terminate();
    this.workers = [];
  }

  /**
   * A 16-byte-aligned region of `bytes`, growing the memory when needed.
   * @throws GpuLimitsError past wasm32's 4 GiB.
   */
  alloc(bytes: number): number {
    const ptr = Math.ceil(this.top / 16) * 16;
    const end = ptr + Math.max(16, bytes);
    const pages = Math.ceil(end / PAGE);
    if (pages > MAX_PAGES) throw new GpuLimitsError(`the CPU backend needs ${(end / 2 ** 30).toFixed(2)} GiB, over WebAssembly's 4 GiB: use fewer layers per stage or fewer KV slots`);
    const have = this.memory.buffer.byteLength / PAGE;
    if (pages > have) this.memory.grow(pages - have);
    this.top = end;
    return ptr;
  }

  /** Allocates a region and copies `data` into it. */
  put(data: View): number {
    const ptr = this.alloc(data.byteLength);
    new Uint8Array(this.memory.buffer, ptr, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return ptr;
  }

  /** A view of n f32 at ptr (valid until the memory grows). */
  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, n);
  }

  /** A view of n i32 at ptr (valid until the memory grows). */
  i32(ptr: number, n: number): Int32Array {
    return new Int32Array(this.memory.buffer, ptr, n);
  }
}
