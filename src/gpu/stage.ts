// The forward pass of a range of decoder layers on one GPU device (one pipeline stage).
//
// Per forward: one small upload (`meta`: rows, committed slots, per-row records and ancestor lists;
// plus the input hidden states on a non-first stage), one command buffer with every dispatch, one
// readback (hidden states, or tokens / candidates and the requested logits). All activations are
// preallocated for maxRows at creation. Per layer (fused, the default: five dispatches):
// q/k/v matmul with RMSNorm in its prologue and RoPE + the KV write in its epilogue -> attention
// (split-K: two passes, for long lists) -> o_proj (+residual) -> gate/up matmul with RMSNorm in its
// prologue and silu -> down_proj (+residual). The unfused path (`fused: false`, eight dispatches:
// separate rmsnorm and rope kernels) is kept as the yardstick of bench:kernels.
import type { HostTensor, ModelSpec, StageRole, WeightFormat } from '../model/types.ts';
import type { RowBatch, StageOutput } from './types.ts';
import type { GpuContext } from './device.ts';
import { Kernels, defaultAttentionSplit, defaultMatmulWorkgroup, defaultWidenF16, type AttentionVariant, type BindingResource, type MatmulRoles, META, ATTENTION_MAX_SPLITS, TOPK_MAX, attentionParams, matmulGrid, matmulParams, storageBuffer, emptyBuffer } from './kernels.ts';
import { KvSlots } from './kv.ts';
import { ropeTable } from '../common/numerics.ts';
import { tensorF32, tensorIn } from '../model/weights.ts';
import { concatQuantRows, isQuantFormat, quantLayout } from '../model/quant.ts';
import { BadRequestError, GpuLimitsError, ModelFormatError } from '../common/errors.ts';

export interface StageOptions {
  /** KV slots per layer (committed context + in-flight tree nodes). */
  numSlots: number;
  /** Most rows in one forward (default 64). */
  maxRows?: number;
  /** Positions covered by the RoPE table (default min(spec.maxPositions, 8192)). */
  maxPositions?: number;
  /** Most rows whose logits one forward can return (default maxRows). */
  maxLogitsRows?: number;
  /** Threads per matmul output (a power of two dividing 64; default: 1 on CPU adapters, else DEFAULT_LANES = 32). */
  lanes?: number;
  /** Attention kernel (default: 'serial' on CPU adapters, else 'workgroup'). */
  attention?: AttentionVariant;
  /**
   * Fused kernels (default true): RMSNorm in the prologue of the matmuls it feeds, RoPE and the KV
   * write in the q/k/v matmul's epilogue (five dispatches per layer). false: the previous path with
   * separate rmsnorm and rope dispatches (eight per layer), for comparison.
   */
  fused?: boolean;
  /** Element type of the KV cache (default 'f32'; 'f16' halves its memory and needs `fused`). */
  kvDtype?: 'f32' | 'f16';
  /**
   * Split-K attention: a row's attend list is cut into one split per this many entries (at most
   * ATTENTION_MAX_SPLITS), attended in parallel and combined by a reduce pass, when some row of the
   * forward has at least twice this many (default: 256 on GPUs, 0 = never on CPU adapters).
   */
  attentionSplit?: number;
  /** Threads per matmul workgroup: 16, 32 or 64 (default: 16 on CPU adapters, else 64). */
  matmulWorkgroup?: number;
  /**
   * Upload f16 matrices widened to f32, where the f32 matrix fits one binding: twice the bytes, no
   * widening in the kernels, the same values (default: on CPU adapters, unless the projections are
   * quantized).
   */
  widenF16?: boolean;
}

/** The tensor as uploaded: f16 widened to f32 when `widen` and the f32 copy is at most `maxBytes`. */
function uploaded(t: HostTensor, widen: boolean, maxBytes: number): HostTensor {
  return widen && t.format === 'f16' && t.data.length * 4 <= maxBytes ? { ...t, format: 'f32', data: tensorF32(t) } : t;
}

/** What a forward needs dispatched: its rows, split-K attention, a sampled token, candidates. */
interface ForwardShape {
  rows: number;
  split: boolean;
  sample: boolean;
  topk: boolean;
}

/** One dispatch of the forward: pipeline, bind group, its grid, and whether this forward needs it. */
interface Step {
  label: string;
  pipe: GPUComputePipeline;
  group: GPUBindGroup;
  grid: (f: ForwardShape) => [number, number, number?];
  when?: (f: ForwardShape) => boolean;
}

/**
 * The row order of the fused q/k/v matrix: within each q and k head, row 2j is row j and row 2j + 1
 * is row j + headDim / 2, so that RoPE's pairs are adjacent outputs (shaders/matmul-rope.wgsl).
 */
function ropePairOrder(numHeads: number, numKvHeads: number, headDim: number): Int32Array {
  const half = headDim / 2;
  const rows = (numHeads + 2 * numKvHeads) * headDim;
  const order = Int32Array.from({ length: rows }, (_, i) => i);
  for (let h = 0; h < numHeads + numKvHeads; h++) {
    for (let j = 0; j < half; j++) {
      order[h * headDim + 2 * j] = h * headDim + j;
      order[h * headDim + 2 * j + 1] = h * headDim + j + half;
    }
  }
  return order;
}

/**
 * f32 weights [rows, cols] with an RMSNorm weight folded into their columns (W[o, i] * n[i]): the
 * fused matmul then only scales by the row's factor (MatmulVariant.normInW). Other formats keep
 * their stored values and multiply x by n in the kernel.
 */
function foldNorm(data: Float32Array | Uint16Array | Uint32Array, format: WeightFormat, n: Float32Array): Float32Array | Uint16Array | Uint32Array {
  if (format !== 'f32') return data;
  const w = data as Float32Array;
  const out = new Float32Array(w.length);
  for (let o = 0; o < w.length; o += n.length) for (let i = 0; i < n.length; i++) out[o + i] = w[o + i] * n[i];
  return out;
}

/** Rows of a [rows, cols] matrix in `format` reordered: row n of the result is row order[n]. */
function reorderRows<T extends Float32Array | Uint16Array | Uint32Array>(data: T, format: WeightFormat, cols: number, order: Int32Array): T {
  const out = data.slice() as T;
  if (isQuantFormat(format)) {
    // Quants: whole blocks per row; scales: one half per block (src/model/quant.ts).
    const L = quantLayout([order.length, cols], format);
    const rowWords = (cols / 32) * L.blockWords;
    const srcS = new Uint16Array(data.buffer, data.byteOffset + L.scaleOffset * 4, L.blocks);
    const dstS = new Uint16Array(out.buffer, out.byteOffset + L.scaleOffset * 4, L.blocks);
    order.forEach((o, n) => {
      out.set(data.subarray(o * rowWords, (o + 1) * rowWords), n * rowWords);
      dstS.set(srcS.subarray((o * cols) / 32, ((o + 1) * cols) / 32), (n * cols) / 32);
    });
    return out;
  }
  order.forEach((o, n) => out.set(data.subarray(o * cols, (o + 1) * cols), n * cols));
  return out;
}

/** Arrays one after the other, in a new array of the same kind. */
function concatArrays<T extends Float32Array | Uint16Array>(parts: T[], make: (n: number) => T): T {
  const out = make(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Matrices stacked along the output dimension (the fused q/k/v matrix), in `format`. */
function concatRows(ts: HostTensor[], format: WeightFormat): Float32Array | Uint16Array | Uint32Array {
  if (isQuantFormat(format)) return concatQuantRows(ts.map((t) => ({ shape: t.shape, data: checkedData(t, format) as Uint32Array })), format);
  const parts = ts.map((t) => tensorIn(t, format));
  return format === 'f32' ? concatArrays(parts as Float32Array[], (n) => new Float32Array(n)) : concatArrays(parts as Uint16Array[], (n) => new Uint16Array(n));
}

/**
 * The tensor's data in `format` (converted when it is not), after checking that quantized data has
 * the size its shape implies.
 * @throws ModelFormatError when a matrix to quantize has an input size that is not a multiple of 32,
 * or quantized data does not fit its shape.
 */
function checkedData(t: HostTensor, format: WeightFormat): Float32Array | Uint16Array | Uint32Array {
  if (isQuantFormat(t.format) && t.data.length !== quantLayout(t.shape, t.format, t.name).words) {
    throw new ModelFormatError(`${t.name}: ${t.data.length} words of ${t.format} blocks, expected ${quantLayout(t.shape, t.format).words} for shape [${t.shape.join(', ')}]`);
  }
  return tensorIn(t, format);
}

export class Stage {
  readonly kv: KvSlots;
  readonly maxRows: number;
  readonly numSlots: number;
  /** Positions the RoPE table covers: a row's position must be below this. */
  readonly maxPositions: number;
  /** Bytes of weights uploaded (for reports). */
  weightBytes = 0;
  /** Of weightBytes, the projection matrices (q/k/v/o, gate/up/down): what `quant` shrinks. */
  projectionBytes = 0;
  /** Bytes of the KV cache (K and V pools of every layer). */
  kvBytes = 0;
  /** Element type of the KV cache. */
  readonly kvDtype: 'f32' | 'f16';
  /** Fused kernels (StageOptions.fused). */
  readonly fused: boolean;
  /** f16 matrices were uploaded as f32 (StageOptions.widenF16). */
  readonly widenF16: boolean;

  private k: Kernels;
  private device: GPUDevice;
  private buffers: GPUBuffer[] = [];
  private steps: Step[] = [];
  private meta: GPUBuffer;
  private metaHost: Uint32Array;
  private metaF: Float32Array;
  private rowsOff: number;
  private ancOff: number;
  private h: GPUBuffer;
  private logits?: GPUBuffer;
  private tokens?: GPUBuffer;
  private readback: GPUBuffer;
  private maxLogitsRows: number;
  private splitMin: number;
  private cand?: GPUBuffer;
  private topkParams?: GPUBuffer;
  private chain: Promise<unknown> = Promise.resolve();
  private destroyed = false;

  private constructor(
    private ctx: GpuContext,
    readonly spec: ModelSpec,
    readonly role: StageRole,
    tensors: (name: string) => HostTensor,
    opts: StageOptions,
  ) {
    const s = spec;
    const dev = ctx.device;
    this.device = dev;
    this.k = new Kernels(ctx, { lanes: opts.lanes, attention: opts.attention, matmulWorkgroup: opts.matmulWorkgroup ?? defaultMatmulWorkgroup(ctx) });
    const given = tensors;
    // Quantized projections mean memory was asked for: their f16 neighbours stay f16 too.
    const L0 = role.layers.start;
    const quantized = role.layers.end > L0 && isQuantFormat(given(`model.layers.${L0}.self_attn.q_proj.weight`).format);
    const widen = (this.widenF16 = opts.widenF16 ?? (defaultWidenF16(ctx) && !quantized));
    const maxBinding = dev.limits?.maxStorageBufferBindingSize ?? 2 ** 27;
    tensors = (name) => uploaded(given(name), widen, maxBinding);
    this.maxRows = opts.maxRows ?? 64;
    this.numSlots = opts.numSlots;
    this.kv = new KvSlots(opts.numSlots);
    this.maxLogitsRows = Math.min(opts.maxLogitsRows ?? this.maxRows, this.maxRows);
    this.fused = opts.fused ?? true;
    this.kvDtype = opts.kvDtype ?? 'f32';
    if (this.kvDtype === 'f16' && !this.fused) throw new BadRequestError('an f16 KV cache needs the fused kernels (fused: true)');
    this.splitMin = opts.attentionSplit ?? defaultAttentionSplit(ctx);
    if (!(Number.isInteger(this.splitMin) && this.splitMin >= 0)) throw new BadRequestError(`attentionSplit must be a whole number >= 0, got ${this.splitMin}`);
    const H = s.hiddenSize;
    const hd = s.headDim;
    const qDim = s.numHeads * hd;
    const kvDim = s.numKvHeads * hd;
    const qkvDim = qDim + 2 * kvDim;
    const I = s.intermediateSize;
    const R = this.maxRows;
    if (H % 4 || I % 4 || hd % 4 || qDim % 4) {
      throw new ModelFormatError(`this runtime needs hidden, intermediate and head sizes that are multiples of 4 (the model has ${H}, ${I}, ${hd})`);
    }
    if (hd > 256) throw new ModelFormatError(`head size ${hd} is not supported (at most 256)`);
    if (s.numHeads % s.numKvHeads) throw new ModelFormatError(`numHeads ${s.numHeads} is not a multiple of numKvHeads ${s.numKvHeads}`);

    const k = this.k;
    const buf = (b: GPUBuffer) => {
      this.buffers.push(b);
      return b;
    };
    const weight = (data: Float32Array | Uint16Array | Uint32Array, label: string) => {
      this.weightBytes += data.byteLength;
      return buf(storageBuffer(dev, data, label));
    };
    const projection = (data: Float32Array | Uint16Array | Uint32Array, label: string) => {
      this.projectionBytes += data.byteLength;
      return weight(data, label);
    };
    const fmtOf = (t: HostTensor) => t.format;
    const step = (label: string, pipe: GPUComputePipeline, res: BindingResource[], grid: Step['grid'], when?: Step['when']) =>
      this.steps.push({ label, pipe, group: k.bind(pipe, res, label), grid, when });
    const perRow = (f: ForwardShape): [number, number] => [f.rows, 1];
    const mmGrid = (out: number) => {
      const g = matmulGrid(out, k.lanes, k.matmulWorkgroup);
      return (): [number, number] => g;
    };
    const fused = this.fused;
    const kv16 = this.kvDtype === 'f16';

    // meta: header, committed slots, row records, ancestor lists (each at most numSlots long).
    this.rowsOff = META.committedOff + opts.numSlots;
    this.ancOff = this.rowsOff + R * META.rowStride;
    const metaWords = this.ancOff + R * opts.numSlots;
    this.metaHost = new Uint32Array(metaWords);
    this.metaF = new Float32Array(this.metaHost.buffer);
    this.meta = buf(emptyBuffer(dev, metaWords * 4, 'meta'));

    this.h = buf(emptyBuffer(dev, R * H * 4, 'h'));
    const xn = buf(emptyBuffer(dev, fused ? 16 : R * H * 4, 'xn')); // the unfused path's rmsnorm output
    const qkv = buf(emptyBuffer(dev, R * qkvDim * 4, 'qkv'));
    // att: the attention output [R, qDim], then (split-K) the partials of every (row, head, split).
    const partOff = R * qDim;
    const att = buf(emptyBuffer(dev, (partOff + (this.splitMin ? R * s.numHeads * ATTENTION_MAX_SPLITS * (hd + 4) : 0)) * 4, 'att'));
    const act = buf(emptyBuffer(dev, R * I * 4, 'act'));
    const dummy = buf(emptyBuffer(dev, 16, 'dummy'));
    const maxPos = opts.maxPositions ?? Math.min(s.maxPositions, 8192);
    this.maxPositions = maxPos;
    const table = buf(storageBuffer(dev, ropeTable(s.ropeTheta, hd, maxPos), 'rope table'));

    const normP = k.uniform([H / 4, { f: s.rmsNormEps }, 0, 0], 'norm params');
    const ropeP = k.uniform([s.numHeads, s.numKvHeads, hd, this.rowsOff, META.rowStride, maxPos, 0, 0], 'rope params');
    const attP = attentionParams(k, { numHeads: s.numHeads, numKvHeads: s.numKvHeads, headDim: hd, rowsOff: this.rowsOff, split: { min: this.splitMin, partOff } });
    this.buffers.push(normP, ropeP, attP);
    // KV pools of a layer: one buffer (fused), K from byte 0 and V from the next aligned offset.
    const kvPoolBytes = opts.numSlots * kvDim * (kv16 ? 2 : 4);
    const align = dev.limits?.minStorageBufferOffsetAlignment ?? 256;
    const vOffBytes = Math.ceil(kvPoolBytes / align) * align;
    const qkvRoles = (normOffset: number) => ({
      norm: { eps: s.rmsNormEps, offset: normOffset },
      rope: { rowsOff: this.rowsOff, headDim: hd, qDim, kvDim, maxPos, vOff: vOffBytes / 4 },
    });
    // Matmul parameters per (shape, format, roles): quantized formats carry where their scales start.
    const params = new Map<string, GPUBuffer>();
    const mmParams = (inDim: number, outDim: number, format: WeightFormat, roles: MatmulRoles = {}): GPUBuffer => {
      const key = `${inDim}x${outDim}:${format}:${JSON.stringify(roles)}`;
      let p = params.get(key);
      if (!p) params.set(key, (p = buf(matmulParams(k, inDim, outDim, format, roles))));
      return p;
    };
    const normRole = { norm: { eps: s.rmsNormEps, offset: 0 } };

    let embedBuf: GPUBuffer | undefined;
    if (role.embed) {
      const e = tensors('model.embed_tokens.weight');
      const ew = weight(e.data, 'embed');
      const p = buf(k.uniform([H / 4, this.rowsOff, META.rowStride, 0], 'embed params'));
      step('embed', k.embed(e.format), [p, this.meta, ew, this.h], (f) => [Math.ceil(H / 4 / 64), f.rows]);
      embedBuf = ew;
    }

    for (let l = role.layers.start; l < role.layers.end; l++) {
      const pre = `model.layers.${l}.`;
      const t = (n: string) => tensors(pre + n);
      const q = t('self_attn.q_proj.weight');
      const fmt = fmtOf(q);
      const n1 = tensorF32(t('input_layernorm.weight'));
      const n2 = tensorF32(t('post_attention_layernorm.weight'));
      // Fused: f32 matrices fed by a norm get its weight folded in (foldNorm).
      const fold = (data: Float32Array | Uint16Array | Uint32Array, format: WeightFormat, n: Float32Array) => (fused ? foldNorm(data, format, n) : data);
      const order = fused ? ropePairOrder(s.numHeads, s.numKvHeads, hd) : undefined;
      const qkvRows = concatRows([q, t('self_attn.k_proj.weight'), t('self_attn.v_proj.weight')], fmt);
      const wqkv = projection(fold(order ? reorderRows(qkvRows, fmt, H, order) : qkvRows, fmt, n1), `L${l} qkv`);
      const qkvBias = s.attentionBias ? (concatRows([t('self_attn.q_proj.bias'), t('self_attn.k_proj.bias'), t('self_attn.v_proj.bias')], 'f32') as Float32Array) : undefined;
      const wo = t('self_attn.o_proj.weight');
      const gate = t('mlp.gate_proj.weight');
      const down = t('mlp.down_proj.weight');
      const woBuf = projection(checkedData(wo, wo.format), `L${l} o`);
      const gateBuf = projection(fold(checkedData(gate, gate.format), gate.format, n2), `L${l} gate`);
      const upBuf = projection(fold(checkedData(t('mlp.up_proj.weight'), gate.format), gate.format, n2), `L${l} up`);
      const downBuf = projection(checkedData(down, down.format), `L${l} down`);
      const attention = (pools: [BindingResource, BindingResource]) => {
        const res = [attP, this.meta, qkv, ...pools, att];
        step(`L${l} attention`, k.attention({ kv16 }), res, (f) => k.attentionGrid(f.rows, s.numHeads), (f) => !f.split);
        step(`L${l} attention split`, k.attention({ kv16, split: true }), res, (f) => k.attentionGrid(f.rows, s.numHeads, true), (f) => f.split);
        step(`L${l} attention reduce`, k.attentionReduce(), [attP, this.meta, att], (f) => [Math.ceil((f.rows * qDim) / 4 / 64), 1], (f) => f.split);
      };
      if (fused) {
        // binding 5 of the q/k/v matmul: [bias (rows in the same order as the matrix) | norm weight].
        const vecs = qkvBias ? concatArrays([reorderRows(qkvBias, 'f32', 1, order!), n1], (n) => new Float32Array(n)) : n1;
        const kvBuf = buf(emptyBuffer(dev, vOffBytes + kvPoolBytes, `L${l} KV`));
        this.kvBytes += 2 * kvPoolBytes;
        step(
          `L${l} qkv`,
          k.matmul({ format: fmt, bias: s.attentionBias, norm: true, normInW: fmt === 'f32', rope: true, kv16 }),
          [mmParams(H, qkvDim, fmt, qkvRoles(qkvBias ? qkvDim : 0)), this.meta, this.h, wqkv, wqkv, weight(vecs, `L${l} qkv bias + norm`), qkv, table, kvBuf],
          mmGrid(qkvDim),
        );
        attention([{ buffer: kvBuf, offset: 0, size: kvPoolBytes }, { buffer: kvBuf, offset: vOffBytes, size: kvPoolBytes }]);
      } else {
        const kPool = buf(emptyBuffer(dev, kvPoolBytes, `L${l} K`));
        const vPool = buf(emptyBuffer(dev, kvPoolBytes, `L${l} V`));
        this.kvBytes += 2 * kvPoolBytes;
        const ropeThreads = ((s.numHeads + s.numKvHeads) * hd) / 2 + kvDim;
        step(`L${l} norm1`, k.rmsnorm(), [normP, this.meta, this.h, weight(n1, `L${l} norm1`), xn], perRow);
        step(`L${l} qkv`, k.matmul({ format: fmt, bias: s.attentionBias }), [mmParams(H, qkvDim, fmt), this.meta, xn, wqkv, wqkv, qkvBias ? weight(qkvBias, `L${l} qkv bias`) : dummy, qkv], mmGrid(qkvDim));
        step(`L${l} rope`, k.rope(), [ropeP, this.meta, table, qkv, kPool, vPool], (f) => [Math.ceil(ropeThreads / 64), f.rows]);
        attention([kPool, vPool]);
      }
      step(`L${l} o`, k.matmul({ format: wo.format, residual: true }), [mmParams(qDim, H, wo.format), this.meta, att, woBuf, woBuf, dummy, this.h], mmGrid(H));
      if (fused) {
        step(`L${l} gate/up`, k.matmul({ format: gate.format, gated: true, norm: true, normInW: gate.format === 'f32' }), [mmParams(H, I, gate.format, normRole), this.meta, this.h, gateBuf, upBuf, weight(n2, `L${l} norm2`), act], mmGrid(I));
      } else {
        step(`L${l} norm2`, k.rmsnorm(), [normP, this.meta, this.h, weight(n2, `L${l} norm2`), xn], perRow);
        step(`L${l} gate/up`, k.matmul({ format: gate.format, gated: true }), [mmParams(H, I, gate.format), this.meta, xn, gateBuf, upBuf, dummy, act], mmGrid(I));
      }
      step(`L${l} down`, k.matmul({ format: down.format, residual: true }), [mmParams(I, H, down.format), this.meta, act, downBuf, downBuf, dummy, this.h], mmGrid(H));
    }

    let readBytes = R * H * 4;
    if (role.head) {
      const V = s.vocabSize;
      const nwHost = tensorF32(tensors('model.norm.weight'));
      const nw = weight(nwHost, 'final norm');
      const ht = tensors(s.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
      // A tied head reuses the embedding buffer when this stage also embeds (and nothing is folded into it).
      const headIn = fused && ht.format === 'f32';
      const hw = s.tieWordEmbeddings && embedBuf && !headIn ? embedBuf : weight(headIn ? foldNorm(checkedData(ht, ht.format), 'f32', nwHost) : checkedData(ht, ht.format), 'lm head');
      this.logits = buf(emptyBuffer(dev, R * V * 4, 'logits'));
      this.tokens = buf(emptyBuffer(dev, R * 4, 'tokens'));
      const sampleP = buf(k.uniform([V, this.rowsOff, META.rowStride, 0], 'sample params'));
      if (fused) {
        step('lm head', k.matmul({ format: ht.format, norm: true, normInW: headIn }), [mmParams(H, V, ht.format, normRole), this.meta, this.h, hw, hw, nw, this.logits], mmGrid(V));
      } else {
        step('final norm', k.rmsnorm(), [normP, this.meta, this.h, nw, xn], perRow);
        step('lm head', k.matmul({ format: ht.format }), [mmParams(H, V, ht.format), this.meta, xn, hw, hw, dummy, this.logits], mmGrid(V));
      }
      step('sample', k.sample(), [sampleP, this.meta, this.logits, this.tokens], perRow, (f) => f.sample);
      this.cand = buf(emptyBuffer(dev, R * 2 * TOPK_MAX * 4, 'candidates'));
      this.topkParams = buf(emptyBuffer(dev, 16, 'top-k params', GPUBufferUsage.UNIFORM));
      step('top-k', k.topk(), [this.topkParams, this.meta, this.logits, this.cand], perRow, (f) => f.topk);
      readBytes = Math.ceil(R / 4) * 16 + Math.max(this.maxLogitsRows * V, R * 2 * TOPK_MAX) * 4;
    }
    this.readback = buf(dev.createBuffer({ label: 'readback', size: Math.ceil(readBytes / 16) * 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST }));
  }

  /**
   * Uploads the weights of `role` (layers, plus embedding / final norm + head), preallocates
   * everything and waits until the kernels have compiled.
   * @throws ModelFormatError when the model's shapes are outside what the kernels support.
   * @throws GpuLimitsError when a buffer is over the device's limits or the GPU runs out of memory.
   * @throws ShaderCompileError when a kernel does not compile on this adapter.
   * @throws BadRequestError on invalid options.
   */
  static async create(ctx: GpuContext, spec: ModelSpec, role: StageRole, tensors: (name: string) => HostTensor, opts: StageOptions): Promise<Stage> {
    const dev = ctx.device;
    dev.pushErrorScope('validation');
    dev.pushErrorScope('out-of-memory');
    let stage: Stage;
    try {
      stage = new Stage(ctx, spec, role, tensors, opts);
    } catch (e) {
      void Promise.all([dev.popErrorScope(), dev.popErrorScope()]).catch(() => undefined);
      throw e;
    }
    const oomScope = dev.popErrorScope();
    const validationScope = dev.popErrorScope();
    try {
      // Kernel errors first: they come with the compiler's messages (pipelines have their own scopes).
      await stage.k.ready();
      const oom = await oomScope;
      if (oom) {
        throw new GpuLimitsError(
          `the GPU ran out of memory for this stage (${(stage.weightBytes / 2 ** 20).toFixed(0)} MiB of weights, plus KV cache and activations): use a smaller model, fewer layers per stage or fewer KV slots (${oom.message})`,
        );
      }
      // What is left for validation: buffers and bindings the device refused.
      const val = await validationScope;
      if (val) throw new GpuLimitsError(`this GPU refused the stage's buffers: ${val.message}`);
    } catch (e) {
      stage.destroy();
      throw e;
    }
    return stage;
  }

  /** Runs the stage's layers on a batch. Calls are serialised in call order. */
  forward(batch: RowBatch): Promise<StageOutput> {
    const committed = [...this.kv.committed];
    const run = this.chain.then(() => this.run(batch, committed));
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Threads per matmul workgroup. */
  get matmulWorkgroup(): number {
    return this.k.matmulWorkgroup;
  }

  /** Dispatches per decoder layer of a forward whose attention is not split (the fused path: 5). */
  get dispatchesPerLayer(): number {
    const L = this.role.layers;
    if (L.end <= L.start) return 0;
    const shape: ForwardShape = { rows: 1, split: false, sample: true, topk: false };
    return this.steps.filter((st) => st.label.startsWith(`L${L.start} `) && (st.when?.(shape) ?? true)).length;
  }

  /** Dispatches of the whole forward of `batch` (with the stage's committed slots as they are now). */
  dispatchCount(batch: RowBatch): number {
    const shape = this.shapeOf(batch, this.kv.committed.length);
    return this.steps.filter((st) => st.when?.(shape) ?? true).length;
  }

  /** What the forward of `batch` dispatches: split-K when some row's attend list is long enough. */
  private shapeOf(batch: RowBatch, committed: number): ForwardShape {
    const longest = committed + batch.ancestors.reduce((a, x) => Math.max(a, x.length), 0) + 1;
    const c = batch.candidates;
    return {
      rows: batch.positions.length,
      split: this.splitMin > 0 && longest >= 2 * this.splitMin,
      sample: !c || !!batch.sampling,
      topk: !!c,
    };
  }

  private dispatchAll(pass: GPUComputePassEncoder, shape: ForwardShape): void {
    for (const st of this.steps) {
      if (st.when && !st.when(shape)) continue;
      pass.setPipeline(st.pipe);
      pass.setBindGroup(0, st.group);
      pass.dispatchWorkgroups(...(st.grid(shape) as [number, number, number]));
    }
  }

  private fillMeta(batch: RowBatch, committed: number[]): number {
    const R = batch.positions.length;
    const m = this.metaHost;
    const mf = this.metaF;
    if (R < 1 || R > this.maxRows) throw new BadRequestError(`forward: ${R} rows, expected 1..${this.maxRows}`);
    if (batch.slots.length !== R || batch.ancestors.length !== R) throw new BadRequestError('forward: slots/ancestors length differs from positions');
    if (this.role.embed && (!batch.tokens || batch.tokens.length !== R)) throw new BadRequestError('forward: the first stage needs one token per row');
    if (!this.role.embed && (!batch.hidden || batch.hidden.length < R * this.spec.hiddenSize)) throw new BadRequestError('forward: needs hidden [rows * hiddenSize]');
    m[0] = R;
    m[1] = committed.length;
    m.set(committed, META.committedOff);
    let a = this.ancOff;
    const maxPos = this.maxPositions;
    for (let r = 0; r < R; r++) {
      const o = this.rowsOff + r * META.rowStride;
      const tok = this.role.embed ? batch.tokens![r] : 0;
      if (this.role.embed && (tok < 0 || tok >= this.spec.vocabSize)) throw new BadRequestError(`forward: token ${tok} out of range`);
      this.kv.check(batch.slots[r]);
      if (batch.positions[r] < 0 || batch.positions[r] >= maxPos) throw new BadRequestError(`forward: position ${batch.positions[r]} out of range`);
      const anc = batch.ancestors[r];
      if (committed.length + anc.length + 1 > this.numSlots + this.maxRows) throw new BadRequestError('forward: attend list too long');
      m[o] = tok;
      m[o + 1] = batch.positions[r];
      m[o + 2] = batch.slots[r];
      m[o + 3] = a;
      m[o + 4] = anc.length;
      const smp = batch.sampling?.[r];
      mf[o + 5] = smp?.temperature ?? 0;
      m[o + 6] = smp?.topK ?? 0;
      mf[o + 7] = smp?.topP ?? 1;
      mf[o + 8] = smp?.uniform ?? 0;
      if (a + anc.length > m.length) throw new BadRequestError('forward: too many ancestor slots');
      for (const x of anc) this.kv.check(x);
      m.set(anc, a);
      a += anc.length;
    }
    return a;
  }

  private async run(batch: RowBatch, committed: number[]): Promise<StageOutput> {
    if (this.destroyed) throw new BadRequestError('forward: this stage was destroyed');
    const s = this.spec;
    const k = this.k;
    const dev = this.device;
    const R = batch.positions.length;
    const H = s.hiddenSize;
    const used = this.fillMeta(batch, committed);
    const shape = this.shapeOf(batch, committed.length);
    const cand = batch.candidates;
    // Candidates: the rows of logitsRows (every row without it), k of each, instead of full logits.
    const rowsOut = batch.logitsRows ?? (cand ? Array.from({ length: R }, (_, i) => i) : []);
    const nOut = rowsOut.length;
    if (cand) {
      if (!this.role.head) throw new BadRequestError('forward: candidates come from the last stage only');
      if (!Number.isInteger(cand.k) || cand.k < 1 || cand.k > Math.min(TOPK_MAX, s.vocabSize)) throw new BadRequestError(`forward: candidates.k must be 1..${Math.min(TOPK_MAX, s.vocabSize)}, got ${cand.k}`);
      if (!Number.isFinite(cand.temperature)) throw new BadRequestError(`forward: candidates.temperature must be a finite number, got ${cand.temperature}`);
      // As logSoftmax (src/speculative/sampling.ts): a temperature <= 0 means 1.
      const p = new ArrayBuffer(16);
      new Uint32Array(p).set([s.vocabSize, cand.k]);
      new Float32Array(p)[2] = cand.temperature > 0 ? cand.temperature : 1;
      dev.queue.writeBuffer(this.topkParams!, 0, p);
    }
    dev.queue.writeBuffer(this.meta, 0, this.metaHost.buffer, 0, used * 4);
    if (!this.role.embed) dev.queue.writeBuffer(this.h, 0, batch.hidden!.buffer, batch.hidden!.byteOffset, R * H * 4);

    const enc = dev.createCommandEncoder({ label: 'stage forward' });
    const pass = enc.beginComputePass();
    this.dispatchAll(pass, shape);
    pass.end();
    let bytes: number;
    const V = s.vocabSize;
    const base = Math.ceil(R / 4) * 16;
    const perRowOut = cand ? 2 * cand.k * 4 : V * 4;
    if (this.role.head) {
      if (!cand && nOut > this.maxLogitsRows) throw new BadRequestError(`forward: at most ${this.maxLogitsRows} logits rows`);
      if (shape.sample) enc.copyBufferToBuffer(this.tokens!, 0, this.readback, 0, Math.min(base, this.tokens!.size));
      rowsOut.forEach((r, i) => {
        if (r < 0 || r >= R) throw new BadRequestError(`forward: logits row ${r} out of range`);
        enc.copyBufferToBuffer(cand ? this.cand! : this.logits!, r * perRowOut, this.readback, base + i * perRowOut, perRowOut);
      });
      bytes = base + nOut * perRowOut;
    } else {
      enc.copyBufferToBuffer(this.h, 0, this.readback, 0, R * H * 4);
      bytes = R * H * 4;
    }
    dev.queue.submit([enc.finish()]);
    const mapBytes = Math.min(this.readback.size, Math.ceil(bytes / 16) * 16);
    await this.readback.mapAsync(GPUMapMode.READ, 0, mapBytes);
    try {
      const data = this.readback.getMappedRange(0, mapBytes);
      if (!this.role.head) return { hidden: new Float32Array(data.slice(0, R * H * 4)) };
      const out: StageOutput = shape.sample ? { tokens: new Int32Array(data.slice(0, R * 4)) } : {};
      if (cand) {
        const k = cand.k;
        const ids = new Int32Array(nOut * k);
        const logprobs = new Float32Array(nOut * k);
        for (let i = 0; i < nOut; i++) {
          ids.set(new Int32Array(data, base + i * perRowOut, k), i * k);
          logprobs.set(new Float32Array(data, base + i * perRowOut + k * 4, k), i * k);
        }
        out.candidates = { ids, logprobs };
      } else if (nOut) {
        out.logits = new Float32Array(data.slice(base, base + nOut * V * 4));
      }
      return out;
    } finally {
      this.readback.unmap();
    }
  }

  /**
   * Runs a forward one dispatch per submit and returns the wall time of each kind of step (summed
   * over layers), for finding where time goes. It is a real forward (writes the rows' KV slots).
   */
  async profile(batch: RowBatch): Promise<{ step: string; ms: number; count: number }[]> {
    await this.chain;
    const dev = this.device;
    const R = batch.positions.length;
    const used = this.fillMeta(batch, [...this.kv.committed]);
    const shape = this.shapeOf(batch, this.kv.committed.length);
    dev.queue.writeBuffer(this.meta, 0, this.metaHost.buffer, 0, used * 4);
    if (!this.role.embed) dev.queue.writeBuffer(this.h, 0, batch.hidden!.buffer, batch.hidden!.byteOffset, R * this.spec.hiddenSize * 4);
    await dev.queue.onSubmittedWorkDone();
    const acc = new Map<string, { ms: number; count: number }>();
    for (const st of this.steps) {
      if (st.when && !st.when(shape)) continue;
      const enc = dev.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(st.pipe);
      pass.setBindGroup(0, st.group);
      pass.dispatchWorkgroups(...(st.grid(shape) as [number, number, number]));
      pass.end();
      const t0 = performance.now();
      dev.queue.submit([enc.finish()]);
      await dev.queue.onSubmittedWorkDone();
      const key = st.label.replace(/^L\d+ /, '');
      const a = acc.get(key) ?? { ms: 0, count: 0 };
      a.ms += performance.now() - t0;
      a.count++;
      acc.set(key, a);
    }
    return [...acc].map(([step, a]) => ({ step, ...a }));
  }

  destroy(): void {
    this.destroyed = true;
    for (const b of this.buffers) b.destroy();
    this.buffers = [];
  }
}

