// A worker thread of the CPU backend: its own instance of the threaded kernels over the stage's
// shared memory, with its own stack, computing its share of every matmul the main thread posts in
// the control block (the protocol: pool-protocol.ts).
import { CTL, shareOf, type WorkerInit } from './pool-protocol.ts';

interface ThreadExports {
  matmul(x: number, rows: number, inDim: number, w: number, fmt: number, outDim: number, y: number, bias: number, accumulate: number, o0: number, o1: number): void;
  __stack_pointer: WebAssembly.Global;
}

/** The worker's global scope, as far as this file uses it (the project's lib is DOM's, not WebWorker's). */
const scope = self as unknown as { onmessage: ((e: MessageEvent<WorkerInit>) => void) | null; postMessage(m: unknown): void };

scope.onmessage = (e) => {
  const { module, memory, stackTop, ctl, index, threads } = e.data;
  const ex = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as ThreadExports;
  ex.__stack_pointer.value = stackTop;
  const c = new Int32Array(memory.buffer, ctl, CTL.words);
  let gen = Atomics.load(c, CTL.gen);
  scope.postMessage('ready');
  for (;;) {
    Atomics.wait(c, CTL.gen, gen);
    gen = Atomics.load(c, CTL.gen);
    if (c[CTL.stop]) return;
    const out = c[CTL.p + 5];
    const [o0, o1] = shareOf(index, threads, out);
    if (o0 < o1) ex.matmul(c[CTL.p], c[CTL.p + 1], c[CTL.p + 2], c[CTL.p + 3], c[CTL.p + 4], out, c[CTL.p + 6], c[CTL.p + 7], c[CTL.p + 8], o0, o1);
    Atomics.add(c, CTL.done, 1);
  }
};
