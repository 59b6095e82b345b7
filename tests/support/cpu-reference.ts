// CPU reference of every kernel and of a stage's forward pass: plain loops over Float32Arrays, the
// same math as the WGSL kernels (and as Hugging Face's Llama), used by tests in Node and the browser.
import type { HostTensor, ModelSpec, StageRole } from '../../src/model/types.ts';
import type { RowBatch, RowSampling, StageOutput } from '../../src/gpu/types.ts';
import { KvSlots } from '../../src/gpu/kv.ts';
import { f16BitsToF32, ropeTable } from '../../src/common/numerics.ts';
import { tensorF32 } from '../../src/model/weights.ts';
import { isQuantFormat, toGgmlBlocks } from '../../src/model/quant.ts';

const f32 = Math.fround;

// ---- kernels -------------------------------------------------------------------------------------

export function refEmbed(E: Float32Array, hidden: number, tokens: ArrayLike<number>): Float32Array {
  const out = new Float32Array(tokens.length * hidden);
  for (let r = 0; r < tokens.length; r++) out.set(E.subarray(tokens[r] * hidden, (tokens[r] + 1) * hidden), r * hidden);
  return out;
}

export function refRmsNorm(x: Float32Array, rows: number, hidden: number, w: Float32Array, eps: number): Float32Array {
  const out = new Float32Array(rows * hidden);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < hidden; i++) ss += x[r * hidden + i] * x[r * hidden + i];
    const inv = 1 / Math.sqrt(ss / hidden + eps);
    for (let i = 0; i < hidden; i++) out[r * hidden + i] = f32(x[r * hidden + i] * inv) * w[i];
  }
  return out;
}

/** y[r, o] = sum_i x[r, i] W[o, i] (+ bias[o]); W is [out, in]. */
export function refMatmul(x: Float32Array, rows: number, inDim: number, W: Float32Array, outDim: number, bias?: Float32Array): Float32Array {
  const y = new Float32Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outDim; o++) {
      let s = 0;
      const wb = o * inDim;
      const xb = r * inDim;
      for (let i = 0; i < inDim; i++) s += x[xb + i] * W[wb + i];
      y[r * outDim + o] = bias ? f32(s) + bias[o] : s;
    }
  }
  return y;
}

/**
 * The values of a quantized matrix, decoded from GGML's own block bytes the way GGML's
 * dequantize_row_q8_0 / dequantize_row_q4_0 do (per block: f16 d, then 32 int8 q -> q d, or 16
 * bytes of nibbles: byte j -> (lo - 8) d at j and (hi - 8) d at j + 16). Dense tensors: their values.
 */
export function refDequantize(t: HostTensor): Float32Array {
  if (!isQuantFormat(t.format)) return tensorF32(t);
  const bytes = toGgmlBlocks(t.data as Uint32Array, t.shape, t.format);
  const q8 = t.format === 'q8_0';
  const blockBytes = q8 ? 34 : 18;
  const out = new Float32Array(t.shape[0] * t.shape[1]);
  for (let b = 0; b * blockBytes < bytes.length; b++) {
    const o = b * blockBytes;
    const d = f16BitsToF32(bytes[o] | (bytes[o + 1] << 8));
    for (let j = 0; j < 32; j++) {
      if (q8) out[b * 32 + j] = ((bytes[o + 2 + j] << 24) >> 24) * d;
      else out[b * 32 + j] = (j < 16 ? (bytes[o + 2 + j] & 15) - 8 : (bytes[o + 2 + j - 16] >> 4) - 8) * d;
    }
  }
  return out;
}

/** The CPU reference of the matmul with weights W [out, in] in any format (quantized: refDequantize). */
export function refMatmulW(x: Float32Array, rows: number, W: HostTensor, bias?: Float32Array): Float32Array {
  const [outDim, inDim] = W.shape;
  return refMatmul(x, rows, inDim, refDequantize(W), outDim, bias);
}

export function silu(g: number): number {
  return g / (1 + Math.exp(-g));
}

/** Rotates nHeads heads of x starting at `off`, in place (rotate-half pairs (i, i + headDim/2)). */
export function refRope(x: Float32Array, off: number, nHeads: number, headDim: number, pos: number, table: Float32Array): void {
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    const b = off + h * headDim;
    for (let i = 0; i < half; i++) {
      const c = table[(pos * half + i) * 2];
      const s = table[(pos * half + i) * 2 + 1];
      const a = x[b + i];
      const d = x[b + i + half];
      x[b + i] = a * c - d * s;
      x[b + i + half] = d * c + a * s;
    }
  }
}

/**
 * Attention of one row's query heads q [nHeads * hd] over a list of keys/values (each [nKv * hd]),
 * GQA: head h uses kv head h / (nHeads / nKv). Plain softmax in f64.
 */
export function refAttention(q: Float32Array, keys: Float32Array[], values: Float32Array[], nHeads: number, nKv: number, hd: number): Float32Array {
  const out = new Float32Array(nHeads * hd);
  const scale = f32(1 / Math.sqrt(hd));
  const group = nHeads / nKv;
  const sc = new Float64Array(keys.length);
  for (let h = 0; h < nHeads; h++) {
    const kvh = Math.floor(h / group);
    let m = -Infinity;
    for (let j = 0; j < keys.length; j++) {
      let s = 0;
      for (let d = 0; d < hd; d++) s += q[h * hd + d] * keys[j][kvh * hd + d];
      sc[j] = s * scale;
      m = Math.max(m, sc[j]);
    }
    let l = 0;
    for (let j = 0; j < keys.length; j++) {
      sc[j] = Math.exp(sc[j] - m);
      l += sc[j];
    }
    for (let d = 0; d < hd; d++) {
      let a = 0;
      for (let j = 0; j < keys.length; j++) a += sc[j] * values[j][kvh * hd + d];
      out[h * hd + d] = a / l;
    }
  }
  return out;
}

// ---- token choice ----------------------------------------------------------------------------------

const keyF = new Float32Array(1);
const keyU = new Uint32Array(keyF.buffer);

function key(v: number): number {
  keyF[0] = v;
  const b = keyU[0];
  return (b & 0x80000000 ? ~b : b | 0x80000000) >>> 0;
}

export function refArgmax(logits: Float32Array, off: number, vocab: number): number {
  let best = 0;
  for (let i = 1; i < vocab; i++) if (logits[off + i] > logits[off + best]) best = i;
  return best;
}

export const SAMPLE_THREADS = 256;

export interface SampleResult {
  token: number;
  /** Distance of u * mass from the nearest cumulative boundary, relative to the kept mass (tests skip near-ties). */
  margin: number;
}

/**
 * Token choice with exactly the semantics (and summation order) of shaders/sample.wgsl:
 * temperature <= 0 -> argmax (lowest id on ties); else softmax(logits / T), keep logits >= the k-th
 * largest (top-k, ties kept), then the smallest highest-logit set with mass >= topP of the top-k mass
 * (ties kept), then inverse CDF with `uniform` over the kept tokens in ascending id order.
 */
export function refSample(logits: Float32Array, off: number, vocab: number, s: RowSampling): SampleResult {
  const best = refArgmax(logits, off, vocab);
  const temp = f32(s.temperature);
  if (!(temp > 0)) return { token: best, margin: Infinity };
  const mz = f32(logits[off + best] / temp);
  const keys = new Uint32Array(vocab);
  const p = new Float32Array(vocab);
  for (let i = 0; i < vocab; i++) {
    keys[i] = key(logits[off + i]);
    p[i] = Math.exp(f32(f32(logits[off + i] / temp) - mz));
  }
  const T = SAMPLE_THREADS;
  const C = Math.ceil(vocab / T);
  const chunkSums = (thr: number): Float32Array => {
    const sums = new Float32Array(T);
    for (let t = 0; t < T; t++) {
      let acc = 0;
      for (let i = Math.min(t * C, vocab); i < Math.min(t * C + C, vocab); i++) if (keys[i] >= thr) acc = f32(acc + p[i]);
      sums[t] = acc;
    }
    return sums;
  };
  const mass = (thr: number): number => {
    let tot = 0;
    for (const v of chunkSums(thr)) tot = f32(tot + v);
    return tot;
  };
  let thrK = 0;
  const topK = s.topK >>> 0;
  if (topK > 0 && topK < vocab) {
    for (let bit = 31; bit >= 0; bit--) {
      const cand = (thrK | (1 << bit)) >>> 0;
      let c = 0;
      for (let i = 0; i < vocab; i++) if (keys[i] >= cand) c++;
      if (c >= topK) thrK = cand;
    }
  }
  let thr = thrK;
  const topP = f32(s.topP);
  if (topP < 1) {
    const target = f32(topP * mass(thrK));
    let t2 = 0;
    for (let bit = 31; bit >= 0; bit--) {
      const cand = (t2 | (1 << bit)) >>> 0;
      if (mass(Math.max(thrK, cand)) >= target) t2 = cand;
    }
    thr = Math.max(thrK, t2);
  }
  const sums = chunkSums(thr);
  let tot = 0;
  for (const v of sums) tot = f32(tot + v);
  const target = f32(f32(s.uniform) * tot);
  let cum = 0;
  let chunk = 0;
  for (let k = 0; k < T; k++) {
    const next = f32(cum + sums[k]);
    if (next > target) {
      chunk = k;
      break;
    }
    cum = next;
    chunk = k + 1;
  }
  let pick = best;
  let margin = Infinity;
  for (let i = Math.min(chunk * C, vocab); i < vocab; i++) {
    if (keys[i] >= thr) {
      const before = cum;
      cum = f32(cum + p[i]);
      margin = Math.min(margin, Math.abs(before - target) / tot, Math.abs(cum - target) / tot);
      if (cum > target) {
        pick = i;
        break;
      }
    }
  }
  return { token: pick, margin };
}

// ---- whole stage -------------------------------------------------------------------------------------

export interface RefLayer {
  inputNorm: Float32Array;
  postNorm: Float32Array;
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
}

/** A stage's forward pass on the CPU, with the same KV-slot semantics as the GPU Stage. */
export class RefStage {
  readonly kv: KvSlots;
  private layers: RefLayer[] = [];
  private embed?: Float32Array;
  private finalNorm?: Float32Array;
  private head?: Float32Array;
  private kPool: Float32Array[] = [];
  private vPool: Float32Array[] = [];
  private table: Float32Array;

  constructor(readonly spec: ModelSpec, readonly role: StageRole, tensors: (name: string) => HostTensor, readonly numSlots: number, maxPos = 4096) {
    const g = (n: string) => tensorF32(tensors(n));
    if (role.embed) this.embed = g('model.embed_tokens.weight');
    for (let l = role.layers.start; l < role.layers.end; l++) {
      const p = `model.layers.${l}.`;
      this.layers.push({
        inputNorm: g(p + 'input_layernorm.weight'),
        postNorm: g(p + 'post_attention_layernorm.weight'),
        wq: g(p + 'self_attn.q_proj.weight'),
        wk: g(p + 'self_attn.k_proj.weight'),
        wv: g(p + 'self_attn.v_proj.weight'),
        wo: g(p + 'self_attn.o_proj.weight'),
        bq: spec.attentionBias ? g(p + 'self_attn.q_proj.bias') : undefined,
        bk: spec.attentionBias ? g(p + 'self_attn.k_proj.bias') : undefined,
        bv: spec.attentionBias ? g(p + 'self_attn.v_proj.bias') : undefined,
        gate: g(p + 'mlp.gate_proj.weight'),
        up: g(p + 'mlp.up_proj.weight'),
        down: g(p + 'mlp.down_proj.weight'),
      });
      const kvSize = numSlots * spec.numKvHeads * spec.headDim;
      this.kPool.push(new Float32Array(kvSize));
      this.vPool.push(new Float32Array(kvSize));
    }
    if (role.head) {
      this.finalNorm = g('model.norm.weight');
      this.head = g(spec.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
    }
    this.kv = new KvSlots(numSlots);
    this.table = ropeTable(spec.ropeTheta, spec.headDim, Math.min(maxPos, spec.maxPositions));
  }

  /** Like Stage.forward, plus `allLogits` [rows * vocab] on a head stage. */
  forward(batch: RowBatch): StageOutput & { allLogits?: Float32Array } {
    const s = this.spec;
    const R = batch.positions.length;
    const H = s.hiddenSize;
    const hd = s.headDim;
    const qDim = s.numHeads * hd;
    const kvDim = s.numKvHeads * hd;
    let h: Float32Array;
    if (this.role.embed) h = refEmbed(this.embed!, H, batch.tokens!);
    else h = Float32Array.from(batch.hidden!.subarray(0, R * H));
    const committed = [...this.kv.committed];
    this.layers.forEach((L, li) => {
      const K = this.kPool[li];
      const V = this.vPool[li];
      const xn = refRmsNorm(h, R, H, L.inputNorm, s.rmsNormEps);
      const q = refMatmul(xn, R, H, L.wq, qDim, L.bq);
      const k = refMatmul(xn, R, H, L.wk, kvDim, L.bk);
      const v = refMatmul(xn, R, H, L.wv, kvDim, L.bv);
      for (let r = 0; r < R; r++) {
        refRope(q, r * qDim, s.numHeads, hd, batch.positions[r], this.table);
        refRope(k, r * kvDim, s.numKvHeads, hd, batch.positions[r], this.table);
        K.set(k.subarray(r * kvDim, (r + 1) * kvDim), batch.slots[r] * kvDim);
        V.set(v.subarray(r * kvDim, (r + 1) * kvDim), batch.slots[r] * kvDim);
      }
      const att = new Float32Array(R * qDim);
      for (let r = 0; r < R; r++) {
        const list = [...committed, ...batch.ancestors[r], batch.slots[r]];
        const keys = list.map((sl) => K.subarray(sl * kvDim, (sl + 1) * kvDim));
        const vals = list.map((sl) => V.subarray(sl * kvDim, (sl + 1) * kvDim));
        att.set(refAttention(q.subarray(r * qDim, (r + 1) * qDim), keys, vals, s.numHeads, s.numKvHeads, hd), r * qDim);
      }
      const o = refMatmul(att, R, qDim, L.wo, H);
      for (let i = 0; i < R * H; i++) h[i] += o[i];
      const xn2 = refRmsNorm(h, R, H, L.postNorm, s.rmsNormEps);
      const g = refMatmul(xn2, R, H, L.gate, s.intermediateSize);
      const u = refMatmul(xn2, R, H, L.up, s.intermediateSize);
      for (let i = 0; i < g.length; i++) g[i] = silu(g[i]) * u[i];
      const d = refMatmul(g, R, s.intermediateSize, L.down, H);
      for (let i = 0; i < R * H; i++) h[i] += d[i];
    });
    if (!this.role.head) return { hidden: h };
    const xn = refRmsNorm(h, R, H, this.finalNorm!, s.rmsNormEps);
    const logits = refMatmul(xn, R, H, this.head!, s.vocabSize);
    const tokens = new Int32Array(R);
    for (let r = 0; r < R; r++) {
      const smp = batch.sampling?.[r] ?? { temperature: 0, topK: 0, topP: 1, uniform: 0 };
      tokens[r] = refSample(logits, r * s.vocabSize, s.vocabSize, smp).token;
    }
    const out: StageOutput & { allLogits?: Float32Array } = { tokens, allLogits: logits };
    if (batch.logitsRows?.length) {
      out.logits = new Float32Array(batch.logitsRows.length * s.vocabSize);
      batch.logitsRows.forEach((r, i) => out.logits!.set(logits.subarray(r * s.vocabSize, (r + 1) * s.vocabSize), i * s.vocabSize));
    }
    return out;
  }
}
