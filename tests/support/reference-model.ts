// A plain-JavaScript f32 forward pass of the whole model with a KV cache, one token at a time.
// Slow and simple on purpose: it checks loaded weights against the PyTorch fixtures in Node, and
// can stand in for a real pipeline in tests of tiny models. Not for production use.
import type { HostTensor, ModelSpec } from '../../src/model/types.ts';
import { EMBED, FINAL_NORM, headWeightName, tensorF32 } from '../../src/model/weights.ts';

/** The tensor's values as f32 (f16 widened, Q8_0 / Q4_0 blocks dequantized). */
function f32(t: HostTensor | undefined, name: string): Float32Array {
  if (!t) throw new Error(`reference forward: tensor ${name} not loaded`);
  return tensorF32(t);
}

function rmsNorm(x: Float32Array, w: Float32Array, eps: number): Float32Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const r = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * r * w[i]);
}

/** y = W x (+ b), W stored row-major [rows, cols] as in PyTorch's Linear. */
function matvec(w: Float32Array, x: Float32Array, rows: number, bias?: Float32Array): Float32Array {
  const cols = x.length;
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const o = r * cols;
    for (let c = 0; c < cols; c++) s += w[o + c] * x[c];
    y[r] = s + (bias ? bias[r] : 0);
  }
  return y;
}

/** RoPE in Hugging Face's rotate_half layout, in place, on `heads` vectors of headDim. */
function rope(v: Float32Array, heads: number, headDim: number, pos: number, theta: number): void {
  const half = headDim / 2;
  for (let i = 0; i < half; i++) {
    const freq = 1 / Math.pow(theta, (2 * i) / headDim);
    const a = pos * freq;
    const c = Math.cos(a);
    const s = Math.sin(a);
    for (let h = 0; h < heads; h++) {
      const o = h * headDim;
      const x1 = v[o + i];
      const x2 = v[o + i + half];
      v[o + i] = x1 * c - x2 * s;
      v[o + i + half] = x2 * c + x1 * s;
    }
  }
}

export class ReferenceModel {
  private readonly w = new Map<string, Float32Array>();
  private readonly keys: Float32Array[][] = [];
  private readonly values: Float32Array[][] = [];

  constructor(
    readonly spec: ModelSpec,
    tensors: Map<string, HostTensor>,
  ) {
    for (const [name, t] of tensors) this.w.set(name, f32(t, name));
    for (let l = 0; l < spec.numLayers; l++) {
      this.keys.push([]);
      this.values.push([]);
    }
  }

  private get(name: string): Float32Array {
    const t = this.w.get(name);
    if (!t) throw new Error(`reference forward: tensor ${name} not loaded`);
    return t;
  }

  /** Number of positions in the KV cache. */
  get length(): number {
    return this.keys[0]?.length ?? 0;
  }

  /** Feeds one token at the next position; returns the hidden state after each layer and the logits. */
  step(token: number): { logits: Float32Array; hidden: Float32Array[] } {
    const s = this.spec;
    const { hiddenSize: H, numHeads: NH, numKvHeads: NKV, headDim: D } = s;
    const pos = this.length;
    let x = this.get(EMBED).slice(token * H, (token + 1) * H);
    const hidden = [x.slice()];
    for (let l = 0; l < s.numLayers; l++) {
      const p = `model.layers.${l}.`;
      const a = rmsNorm(x, this.get(`${p}input_layernorm.weight`), s.rmsNormEps);
      const bias = (n: string): Float32Array | undefined => (s.attentionBias ? this.get(`${p}self_attn.${n}.bias`) : undefined);
      const q = matvec(this.get(`${p}self_attn.q_proj.weight`), a, NH * D, bias('q_proj'));
      const k = matvec(this.get(`${p}self_attn.k_proj.weight`), a, NKV * D, bias('k_proj'));
      const v = matvec(this.get(`${p}self_attn.v_proj.weight`), a, NKV * D, bias('v_proj'));
      rope(q, NH, D, pos, s.ropeTheta);
      rope(k, NKV, D, pos, s.ropeTheta);
      this.keys[l].push(k);
      this.values[l].push(v);
      const T = this.keys[l].length;
      const att = new Float32Array(NH * D);
      const group = NH / NKV;
      for (let h = 0; h < NH; h++) {
        const kv = Math.floor(h / group);
        const scores = new Float64Array(T);
        let max = -Infinity;
        for (let t = 0; t < T; t++) {
          let d = 0;
          const kt = this.keys[l][t];
          for (let i = 0; i < D; i++) d += q[h * D + i] * kt[kv * D + i];
          scores[t] = d / Math.sqrt(D);
          max = Math.max(max, scores[t]);
        }
        let sum = 0;
        for (let t = 0; t < T; t++) sum += scores[t] = Math.exp(scores[t] - max);
        for (let t = 0; t < T; t++) {
          const vt = this.values[l][t];
          const pr = scores[t] / sum;
          for (let i = 0; i < D; i++) att[h * D + i] += pr * vt[kv * D + i];
        }
      }
      const o = matvec(this.get(`${p}self_attn.o_proj.weight`), att, H);
      x = x.map((xv, i) => xv + o[i]);
      const b = rmsNorm(x, this.get(`${p}post_attention_layernorm.weight`), s.rmsNormEps);
      const g = matvec(this.get(`${p}mlp.gate_proj.weight`), b, s.intermediateSize);
      const u = matvec(this.get(`${p}mlp.up_proj.weight`), b, s.intermediateSize);
      const m = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]);
      const d = matvec(this.get(`${p}mlp.down_proj.weight`), m, H);
      x = x.map((xv, i) => xv + d[i]);
      hidden.push(x.slice());
    }
    const n = rmsNorm(x, this.get(FINAL_NORM), s.rmsNormEps);
    return { logits: matvec(this.get(headWeightName(s)), n, s.vocabSize), hidden };
  }
}
