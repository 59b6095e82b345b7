// The forward pass of a range of decoder layers on the CPU, in WebAssembly with 128-bit SIMD: the
// same contract as src/gpu's Stage (RowBatch in, StageOutput out, KvSlots bookkeeping, the same
// sampling), so a ring may mix WebGPU and WASM stages. Per layer: rmsnorm -> fused qkv matmul
// (+bias) -> rope + KV write -> attention (committed, ancestors, self) -> o_proj (+residual) ->
// rmsnorm -> gate, up, silu(gate) * up -> down_proj (+residual). Weights keep their format (f32,
// f16 halves, Q8_0 / Q4_0 blocks) in the module's memory; everything is allocated at creation.
import type { HostTensor, ModelSpec, StageRole, WeightFormat } from '../model/types.ts';
import type { RowBatch, StageOutput } from '../gpu/types.ts';
import { KvSlots } from '../gpu/kv.ts';
import { ropeTable } from '../common/numerics.ts';
import { tensorF32, tensorIn } from '../model/weights.ts';
import { concatQuantRows, isQuantFormat, quantLayout } from '../model/quant.ts';
import { BadRequestError, ModelFormatError } from '../common/errors.ts';
import { FORMAT_CODE, WasmKernels } from './wasm-kernels.ts';

/** Options of WasmStage.create (the CPU counterparts of StageOptions). */
export interface WasmStageOptions {
  /** KV slots per layer (committed context + in-flight tree nodes). */
  numSlots: number;
  /** Most rows in one forward (default 64). */
  maxRows?: number;
  /** Positions covered by the RoPE table (default min(spec.maxPositions, 8192)). */
  maxPositions?: number;
  /** Most rows whose logits one forward can return (default maxRows). */
  maxLogitsRows?: number;
  /** Threads per matmul where the page is cross-origin isolated (default 1; see availableThreads). */
  threads?: number;
}

/** A matrix in the module's memory. */
interface Matrix {
  ptr: number;
  fmt: number;
}

interface Layer {
  norm1: number;
  norm2: number;
  qkv: Matrix;
  bias: number;
  o: Matrix;
  gate: Matrix;
  up: Matrix;
  down: Matrix;
  K: number;
  V: number;
}

/** Where the per-forward inputs and activations live (sized for maxRows). */
interface Buffers {
  h: number;
  xn: number;
  qkv: number;
  att: number;
  act: number;
  up: number;
  tokens: number;
  positions: number;
  slots: number;
  listOff: number;
  listLen: number;
  lists: number;
  scores: number;
  table: number;
  logits: number;
  p: number;
  keys: number;
  sums: number;
}

/**
 * The tensor's data in `format` after checking that quantized data has the size its shape implies.
 * @throws ModelFormatError when a matrix to quantize has an input size that is not a multiple of 32,
 * or quantized data does not fit its shape.
 */
function matrixData(t: HostTensor, format: WeightFormat): Float32Array | Uint16Array | Uint32Array {
  if (isQuantFormat(t.format) && t.data.length !== quantLayout(t.shape, t.format, t.name).words) {
    throw new ModelFormatError(`${t.name}: ${t.data.length} words of ${t.format} blocks, expected ${quantLayout(t.shape, t.format).words} for shape [${t.shape.join(', ')}]`);
  }
  return tensorIn(t, format);
}

/** Most candidates per row, as the GPU stage allows (src/gpu/kernels.ts TOPK_MAX). */
const CANDIDATES_MAX = 16;

/**
 * The k largest logits of each of `rows` (largest first, ties to the lower id) and their
 * log-probabilities at `temperature` over the whole vocabulary (<= 0 means 1): what the GPU stage's
 * topk kernel returns for a draft model, computed here in f64.
 */
function candidatesOf(logits: Float32Array, V: number, rows: readonly number[], k: number, temperature: number): { ids: Int32Array; logprobs: Float32Array } {
  const T = temperature > 0 ? temperature : 1;
  const ids = new Int32Array(rows.length * k);
  const logprobs = new Float32Array(rows.length * k);
  rows.forEach((r, i) => {
    const l = logits.subarray(r * V, (r + 1) * V);
    let m = -Infinity;
    for (let j = 0; j < V; j++) m = Math.max(m, l[j] / T);
    let z = 0;
    for (let j = 0; j < V; j++) z += Math.exp(l[j] / T - m);
    const lz = m + Math.log(z);
    const best: number[] = [];
    for (let j = 0; j < V; j++) {
      if (best.length === k && !(l[j] > l[best[k - 1]])) continue; // ids ascend: an equal logit ranks after
      let p = Math.min(best.length, k - 1);
      best[p] = j;
      while (p > 0 && l[j] > l[best[p - 1]]) {
        best[p] = best[p - 1];
        best[--p] = j;
      }
    }
    best.forEach((id, n) => {
      ids[i * k + n] = id;
      logprobs[i * k + n] = l[id] / T - lz;
    });
  });
  return { ids, logprobs };
}

/** A stage's layers on the CPU (see the top of this file). */
export class WasmStage {
  readonly kv: KvSlots;
  readonly maxRows: number;
  readonly numSlots: number;
  /** Positions the RoPE table covers: a row's position must be below this. */
  readonly maxPositions: number;
  /** Bytes of weights held (for reports). */
  weightBytes = 0;
  /** Of weightBytes, the projection matrices (q/k/v/o, gate/up/down). */
  projectionBytes = 0;

  private readonly layers: Layer[] = [];
  private readonly b: Buffers;
  private embedding: Matrix | null = null;
  private head: Matrix | null = null;
  private finalNorm = 0;
  private readonly maxLogitsRows: number;
  private readonly listCap: number;

  /** The kernels and their memory; null once destroyed (the memory goes with them). */
  private kernels: WasmKernels | null;

  private constructor(
    k: WasmKernels,
    readonly spec: ModelSpec,
    readonly role: StageRole,
    tensors: (name: string) => HostTensor,
    opts: WasmStageOptions,
  ) {
    this.kernels = k;
    const s = spec;
    const H = s.hiddenSize;
    const hd = s.headDim;
    const qDim = s.numHeads * hd;
    const kvDim = s.numKvHeads * hd;
    const qkvDim = qDim + 2 * kvDim;
    const I = s.intermediateSize;
    if (H % 4 || I % 4 || hd % 4 || hd > 256) throw new ModelFormatError(`the CPU backend needs hidden, intermediate and head sizes that are multiples of 4 and a head size of at most 256 (the model has ${H}, ${I}, ${hd})`);
    if (s.numHeads % s.numKvHeads) throw new ModelFormatError(`numHeads ${s.numHeads} is not a multiple of numKvHeads ${s.numKvHeads}`);
    if (!Number.isInteger(opts.numSlots) || opts.numSlots < 1) throw new BadRequestError(`numSlots must be a whole number >= 1 (got ${opts.numSlots})`);
    this.maxRows = opts.maxRows ?? 64;
    this.numSlots = opts.numSlots;
    this.kv = new KvSlots(opts.numSlots);
    this.maxLogitsRows = Math.min(opts.maxLogitsRows ?? this.maxRows, this.maxRows);
    this.maxPositions = opts.maxPositions ?? Math.min(s.maxPositions, 8192);
    const R = this.maxRows;

    const weight = (data: Float32Array | Uint16Array | Uint32Array): number => {
      this.weightBytes += data.byteLength;
      return k.put(data);
    };
    const matrix = (t: HostTensor, format = t.format): Matrix => {
      const data = matrixData(t, format);
      this.projectionBytes += data.byteLength;
      return { ptr: weight(data), fmt: FORMAT_CODE[format] };
    };
    /** q, k, v stacked along the output dimension in q's format (dense stacks are plain concatenations). */
    const qkvMatrix = (ts: HostTensor[]): Matrix => {
      const format = ts[0].format;
      const parts = ts.map((t) => matrixData(t, format));
      if (isQuantFormat(format)) return { ptr: weight(concatQuantRows(ts.map((t, i) => ({ shape: t.shape, data: parts[i] as Uint32Array })), format)), fmt: FORMAT_CODE[format] };
      const bytes = parts.reduce((a, p) => a + p.byteLength, 0);
      const ptr = k.alloc(bytes);
      let o = ptr;
      for (const p of parts) {
        new Uint8Array(k.memory.buffer, o, p.byteLength).set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
        o += p.byteLength;
      }
      this.weightBytes += bytes;
      this.projectionBytes += bytes;
      return { ptr, fmt: FORMAT_CODE[format] };
    };
    const f32Vector = (names: string[]): number => {
      const vs = names.map((n) => tensorF32(tensors(n)));
      const all = new Float32Array(vs.reduce((a, v) => a + v.length, 0));
      let o = 0;
      for (const v of vs) {
        all.set(v, o);
        o += v.length;
      }
      return weight(all);
    };

    if (role.embed) {
      const e = tensors('model.embed_tokens.weight');
      if (e.format !== 'f32' && e.format !== 'f16') throw new ModelFormatError(`the embedding must be f32 or f16 (it is ${e.format})`);
      this.embedding = { ptr: weight(e.data), fmt: FORMAT_CODE[e.format] };
    }
    for (let l = role.layers.start; l < role.layers.end; l++) {
      const pre = `model.layers.${l}.`;
      const t = (n: string) => tensors(pre + n);
      const gate = t('mlp.gate_proj.weight');
      const kvBytes = opts.numSlots * kvDim * 4;
      this.layers.push({
        norm1: f32Vector([pre + 'input_layernorm.weight']),
        norm2: f32Vector([pre + 'post_attention_layernorm.weight']),
        qkv: qkvMatrix([t('self_attn.q_proj.weight'), t('self_attn.k_proj.weight'), t('self_attn.v_proj.weight')]),
        bias: s.attentionBias ? f32Vector(['q', 'k', 'v'].map((x) => `${pre}self_attn.${x}_proj.bias`)) : 0,
        o: matrix(t('self_attn.o_proj.weight')),
        gate: matrix(gate),
        up: matrix(t('mlp.up_proj.weight'), gate.format),
        down: matrix(t('mlp.down_proj.weight')),
        K: k.alloc(kvBytes),
        V: k.alloc(kvBytes),
      });
    }
    const V = s.vocabSize;
    if (role.head) {
      this.finalNorm = f32Vector(['model.norm.weight']);
      const ht = tensors(s.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
      // A tied head reuses the embedding when this stage also embeds.
      if (s.tieWordEmbeddings && this.embedding) this.head = this.embedding;
      else {
        const data = matrixData(ht, ht.format);
        this.head = { ptr: weight(data), fmt: FORMAT_CODE[ht.format] };
      }
    }
    // Attend lists: committed + ancestors + self, bounded as in Stage (numSlots + maxRows per row).
    this.listCap = opts.numSlots + R;
    const f = 4;
    this.b = {
      h: k.alloc(R * H * f),
      xn: k.alloc(R * H * f),
      qkv: k.alloc(R * qkvDim * f),
      att: k.alloc(R * qDim * f),
      act: k.alloc(R * I * f),
      up: k.alloc(R * I * f),
      tokens: k.alloc(R * f),
      positions: k.alloc(R * f),
      slots: k.alloc(R * f),
      listOff: k.alloc(R * f),
      listLen: k.alloc(R * f),
      lists: k.alloc(R * this.listCap * f),
      scores: k.alloc(this.listCap * f),
      table: k.put(ropeTable(s.ropeTheta, hd, this.maxPositions)),
      logits: role.head ? k.alloc(R * V * f) : 0,
      p: role.head ? k.alloc(V * f) : 0,
      keys: role.head ? k.alloc(V * f) : 0,
      sums: role.head ? k.alloc(256 * f) : 0,
    };
  }

  /**
   * Loads the weights of `role` (layers, plus embedding / final norm + head) into a new instance of
   * the kernels and preallocates everything a forward needs.
   * @throws ModelFormatError when the model's shapes are outside what the kernels support.
   * @throws GpuLimitsError when the stage needs more than WebAssembly's 4 GiB.
   * @throws BadRequestError on invalid options.
   */
  static async create(spec: ModelSpec, role: StageRole, tensors: (name: string) => HostTensor, opts: WasmStageOptions): Promise<WasmStage> {
    const k = await WasmKernels.create(opts.threads ?? 1);
    try {
      return new WasmStage(k, spec, role, tensors, opts);
    } catch (e) {
      k.destroy();
      throw e;
    }
  }

  /**
   * Runs the stage's layers on a batch. The work is done in this call (the committed prefix is the
   * one at call time); errors reject the promise.
   */
  async forward(batch: RowBatch): Promise<StageOutput> {
    const k = this.kernels;
    if (!k) throw new BadRequestError('forward: this stage was destroyed');
    const s = this.spec;
    const fn = k.fn;
    const b = this.b;
    const R = this.fillInputs(k, batch, this.kv.committed);
    const H = s.hiddenSize;
    const hd = s.headDim;
    const qDim = s.numHeads * hd;
    const qkvDim = qDim + 2 * s.numKvHeads * hd;
    const I = s.intermediateSize;
    const eps = s.rmsNormEps;
    if (this.embedding) fn.embed(b.tokens, R, this.embedding.ptr, this.embedding.fmt, H, b.h);
    else k.f32(b.h, R * H).set(batch.hidden!.subarray(0, R * H));
    const scale = Math.fround(1 / Math.sqrt(hd));
    for (const L of this.layers) {
      fn.rmsnorm(b.h, R, H, L.norm1, eps, b.xn);
      k.matmul(b.xn, R, H, L.qkv.ptr, L.qkv.fmt, qkvDim, b.qkv, L.bias, 0);
      fn.rope_kv(b.qkv, R, b.positions, b.slots, b.table, s.numHeads, s.numKvHeads, hd, L.K, L.V);
      fn.attention(b.qkv, R, b.lists, b.listOff, b.listLen, L.K, L.V, s.numHeads, s.numKvHeads, hd, scale, b.scores, b.att);
      k.matmul(b.att, R, qDim, L.o.ptr, L.o.fmt, H, b.h, 0, 1);
      fn.rmsnorm(b.h, R, H, L.norm2, eps, b.xn);
      k.matmul(b.xn, R, H, L.gate.ptr, L.gate.fmt, I, b.act, 0, 0);
      k.matmul(b.xn, R, H, L.up.ptr, L.up.fmt, I, b.up, 0, 0);
      fn.silu_mul(b.act, b.up, R * I);
      k.matmul(b.act, R, I, L.down.ptr, L.down.fmt, H, b.h, 0, 1);
    }
    if (!this.head) return { hidden: k.f32(b.h, R * H).slice() };
    const V = s.vocabSize;
    fn.rmsnorm(b.h, R, H, this.finalNorm, eps, b.xn);
    k.matmul(b.xn, R, H, this.head.ptr, this.head.fmt, V, b.logits, 0, 0);
    const out: StageOutput = {};
    // As Stage: with candidates and no sampling settings, no token is picked.
    if (!batch.candidates || batch.sampling) {
      out.tokens = new Int32Array(R);
      for (let r = 0; r < R; r++) {
        const smp = batch.sampling?.[r];
        out.tokens[r] = fn.sample(b.logits + r * V * 4, V, smp?.temperature ?? 0, smp?.topK ?? 0, smp?.topP ?? 1, smp?.uniform ?? 0, b.p, b.keys, b.sums);
      }
    }
    const all = k.f32(b.logits, R * V);
    if (batch.candidates) {
      out.candidates = candidatesOf(all, V, batch.logitsRows ?? Array.from({ length: R }, (_, i) => i), batch.candidates.k, batch.candidates.temperature);
      return out;
    }
    const rows = batch.logitsRows ?? [];
    if (rows.length) {
      out.logits = new Float32Array(rows.length * V);
      rows.forEach((r, i) => out.logits!.set(all.subarray(r * V, (r + 1) * V), i * V));
    }
    return out;
  }

  /**
   * Checks a batch as Stage does and writes its rows (tokens, positions, slots, attend lists) into
   * the module's memory; returns the row count.
   * @throws BadRequestError on rows, slots, positions, tokens or lists out of range.
   */
  private fillInputs(k: WasmKernels, batch: RowBatch, committed: readonly number[]): number {
    const R = batch.positions.length;
    const s = this.spec;
    if (R < 1 || R > this.maxRows) throw new BadRequestError(`forward: ${R} rows, expected 1..${this.maxRows}`);
    if (batch.slots.length !== R || batch.ancestors.length !== R) throw new BadRequestError('forward: slots/ancestors length differs from positions');
    if (this.role.embed && (!batch.tokens || batch.tokens.length !== R)) throw new BadRequestError('forward: the first stage needs one token per row');
    if (!this.role.embed && (!batch.hidden || batch.hidden.length < R * s.hiddenSize)) throw new BadRequestError('forward: needs hidden [rows * hiddenSize]');
    if (this.role.head && !batch.candidates && (batch.logitsRows?.length ?? 0) > this.maxLogitsRows) throw new BadRequestError(`forward: at most ${this.maxLogitsRows} logits rows`);
    const cand = batch.candidates;
    if (cand) {
      if (!this.role.head) throw new BadRequestError('forward: candidates come from the last stage only');
      if (!Number.isInteger(cand.k) || cand.k < 1 || cand.k > Math.min(CANDIDATES_MAX, s.vocabSize)) throw new BadRequestError(`forward: candidates.k must be 1..${Math.min(CANDIDATES_MAX, s.vocabSize)}, got ${cand.k}`);
      if (!Number.isFinite(cand.temperature)) throw new BadRequestError(`forward: candidates.temperature must be a finite number, got ${cand.temperature}`);
    }
    for (const r of batch.logitsRows ?? []) if (!Number.isInteger(r) || r < 0 || r >= R) throw new BadRequestError(`forward: logits row ${r} out of range`);
    const b = this.b;
    const tokens = k.i32(b.tokens, R);
    const positions = k.i32(b.positions, R);
    const slots = k.i32(b.slots, R);
    const listOff = k.i32(b.listOff, R);
    const listLen = k.i32(b.listLen, R);
    const lists = k.i32(b.lists, R * this.listCap);
    for (let r = 0; r < R; r++) {
      if (this.role.embed) {
        const tok = batch.tokens![r];
        if (!Number.isInteger(tok) || tok < 0 || tok >= s.vocabSize) throw new BadRequestError(`forward: token ${tok} out of range`);
        tokens[r] = tok;
      }
      const pos = batch.positions[r];
      if (pos < 0 || pos >= this.maxPositions) throw new BadRequestError(`forward: position ${pos} out of range`);
      this.kv.check(batch.slots[r]);
      const anc = batch.ancestors[r];
      const n = committed.length + anc.length + 1;
      if (n > this.listCap) throw new BadRequestError('forward: attend list too long');
      for (const x of anc) this.kv.check(x);
      positions[r] = pos;
      slots[r] = batch.slots[r];
      const off = r * this.listCap;
      lists.set(committed, off);
      lists.set(anc, off + committed.length);
      lists[off + n - 1] = batch.slots[r];
      listOff[r] = off;
      listLen[r] = n;
    }
    return R;
  }

  /** Stops the worker threads and frees the stage's memory (the module instance goes with it). */
  destroy(): void {
    this.kernels?.destroy();
    this.kernels = null;
  }
}
