// Browser side of e2e/quant-quality.spec.ts: perplexity of a model on token windows through the
// real runtime (loader + WGSL kernels), with its projections as stored or quantized on load.
import { loadModel, loadStageTensors, urlSource } from '../../src/model/index.ts';
import type { QuantFormat } from '../../src/model/types.ts';
import { createGpuContext } from '../../src/gpu/device.ts';
import { Stage } from '../../src/gpu/stage.ts';

export interface PerplexityReport {
  quant: string;
  windows: number;
  tokens: number;
  /** Sum of -log p(next token), nats. */
  nll: number;
  ppl: number;
  weightBytes: number;
  projectionBytes: number;
  ms: number;
}

const ROWS = 64;

/**
 * Each window [t0 .. tn] is fed as n positions (prefilled ROWS rows per forward, each row attending
 * to the committed rows before its chunk and the rows before it in the chunk); every position's
 * logits score the next token (float64 log-softmax), as tools/train/evaluate.py does.
 */
export async function perplexity(req: { url: string; quant?: QuantFormat; windows: number[][] }): Promise<PerplexityReport> {
  const t0 = performance.now();
  const source = urlSource(req.url);
  const model = await loadModel(source, { tokenizer: false, cache: false });
  const { spec } = model;
  const role = { layers: { start: 0, end: spec.numLayers }, embed: true, head: true };
  const tensors = await loadStageTensors(source, spec, role, { quant: req.quant, cache: false, index: model.tensorIndex });
  const n = req.windows[0].length - 1;
  const ctx = await createGpuContext();
  const stage = await Stage.create(ctx, spec, role, (name) => tensors.get(name)!, { numSlots: n, maxRows: ROWS });
  const V = spec.vocabSize;
  let nll = 0;
  let tokens = 0;
  try {
    for (const w of req.windows) {
      for (let c = 0; c < n; c += ROWS) {
        const R = Math.min(ROWS, n - c);
        const slots = Int32Array.from({ length: R }, (_, i) => c + i);
        const out = await stage.forward({
          tokens: Int32Array.from(w.slice(c, c + R)),
          positions: slots,
          slots,
          ancestors: Array.from({ length: R }, (_, i) => Int32Array.from({ length: i }, (_, j) => c + j)),
          logitsRows: Array.from({ length: R }, (_, i) => i),
        });
        const L = out.logits!;
        for (let r = 0; r < R; r++) {
          let max = -Infinity;
          for (let v = 0; v < V; v++) max = Math.max(max, L[r * V + v]);
          let sum = 0;
          for (let v = 0; v < V; v++) sum += Math.exp(L[r * V + v] - max);
          nll += max + Math.log(sum) - L[r * V + w[c + r + 1]];
          tokens++;
        }
        stage.kv.commit(slots);
      }
      stage.kv.release([...stage.kv.committed]);
    }
    return { quant: req.quant ?? 'none (f16)', windows: req.windows.length, tokens, nll, ppl: Math.exp(nll / tokens), weightBytes: stage.weightBytes, projectionBytes: stage.projectionBytes, ms: performance.now() - t0 };
  } finally {
    stage.destroy();
    ctx.device.destroy();
  }
}
