// The forward pass of a range of decoder layers on one GPU device (one pipeline stage).
//
// Per forward: one small upload (`meta`: rows, committed slots, per-row records and ancestor lists;
// plus the input hidden states on a non-first stage), one command buffer with every dispatch, one
// readback (hidden states, or tokens and the requested logits). All activations are preallocated
// for maxRows at creation. Per layer: rmsnorm -> fused qkv matmul (+bias) -> rope + KV write ->
// attention -> o_proj (+residual) -> rmsnorm -> gate/up matmul with silu -> down_proj (+residual).
import type { HostTensor, ModelSpec, StageRole, WeightFormat } from '../model/types.ts';
import type { RowBatch, StageOutput } from './types.ts';
import type { GpuContext } from './device.ts';
import { Kernels, type AttentionVariant, META, matmulGrid, matmulParams, storageBuffer, emptyBuffer } from './kernels.ts';
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
}

/** One dispatch of the forward: pipeline, bind group, and its grid as a function of the row count. */
interface Step {
  label: string;
  pipe: GPUComputePipeline;
  group: GPUBindGroup;
  grid: (rows: number) => [number, number];
}

/** Matrices stacked along the output dimension (the fused q/k/v matrix), in `format`. */
function concatRows(ts: HostTensor[], format: WeightFormat): Float32Array | Uint16Array | Uint32Array {
  if (isQuantFormat(format)) return concatQuantRows(ts.map((t) => ({ shape: t.shape, data: checkedData(t, format) as Uint32Array })), format);
  const parts = ts.map((t) => tensorIn(t, format));
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = format === 'f32' ? new Float32Array(n) : new Uint16Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p as never, o);
    o += p.length;
  }
  return out;
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
    this.k = new Kernels(ctx, { lanes: opts.lanes, attention: opts.attention });
    this.maxRows = opts.maxRows ?? 64;
    this.numSlots = opts.numSlots;
    this.kv = new KvSlots(opts.numSlots);
    this.maxLogitsRows = Math.min(opts.maxLogitsRows ?? this.maxRows, this.maxRows);
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
    const step = (label: string, pipe: GPUComputePipeline, res: GPUBuffer[], grid: (rows: number) => [number, number]) =>
      this.steps.push({ label, pipe, group: k.bind(pipe, res, label), grid });
    const perRow = (rows: number): [number, number] => [rows, 1];
    const mmGrid = (out: number) => {
      const g = matmulGrid(out, k.lanes);
      return (): [number, number] => g;
    };

    // meta: header, committed slots, row records, ancestor lists (each at most numSlots long).
    this.rowsOff = META.committedOff + opts.numSlots;
    this.ancOff = this.rowsOff + R * META.rowStride;
    const metaWords = this.ancOff + R * opts.numSlots;
    this.metaHost = new Uint32Array(metaWords);
    this.metaF = new Float32Array(this.metaHost.buffer);
    this.meta = buf(emptyBuffer(dev, metaWords * 4, 'meta'));

    this.h = buf(emptyBuffer(dev, R * H * 4, 'h'));
    const xn = buf(emptyBuffer(dev, R * H * 4, 'xn'));
    const qkv = buf(emptyBuffer(dev, R * qkvDim * 4, 'qkv'));
    const att = buf(emptyBuffer(dev, R * qDim * 4, 'att'));
    const act = buf(emptyBuffer(dev, R * I * 4, 'act'));
    const dummy = buf(emptyBuffer(dev, 16, 'dummy'));
    const maxPos = opts.maxPositions ?? Math.min(s.maxPositions, 8192);
    this.maxPositions = maxPos;
    const table = buf(storageBuffer(dev, ropeTable(s.ropeTheta, hd, maxPos), 'rope table'));

    const normP = k.uniform([H / 4, { f: s.rmsNormEps }, 0, 0], 'norm params');
    const ropeP = k.uniform([s.numHeads, s.numKvHeads, hd, this.rowsOff, META.rowStride, maxPos, 0, 0], 'rope params');
    const attP = k.uniform([s.numHeads, s.numKvHeads, hd, this.rowsOff, META.rowStride, META.committedOff, { f: 1 / Math.sqrt(hd) }, 0], 'attention params');
    this.buffers.push(normP, ropeP, attP);
    // Matmul parameters per (shape, format): quantized formats carry where their scales start.
    const params = new Map<string, GPUBuffer>();
    const mmParams = (inDim: number, outDim: number, format: WeightFormat): GPUBuffer => {
      const key = `${inDim}x${outDim}:${format}`;
      let p = params.get(key);
      if (!p) params.set(key, (p = buf(matmulParams(k, inDim, outDim, format))));
      return p;
    };

    let embedBuf: GPUBuffer | undefined;
    if (role.embed) {
      const e = tensors('model.embed_tokens.weight');
      const ew = weight(e.data, 'embed');
      const p = buf(k.uniform([H / 4, this.rowsOff, META.rowStride, 0], 'embed params'));
      step('embed', k.embed(e.format), [p, this.meta, ew, this.h], (rows) => [Math.ceil(H / 4 / 64), rows]);
      embedBuf = ew;
    }

    for (let l = role.layers.start; l < role.layers.end; l++) {
      const pre = `model.layers.${l}.`;
      const t = (n: string) => tensors(pre + n);
      const q = t('self_attn.q_proj.weight');
      const fmt = fmtOf(q);
      const wqkv = projection(concatRows([q, t('self_attn.k_proj.weight'), t('self_attn.v_proj.weight')], fmt), `L${l} qkv`);
      const bias = s.attentionBias
        ? weight(concatRows([t('self_attn.q_proj.bias'), t('self_attn.k_proj.bias'), t('self_attn.v_proj.bias')], 'f32'), `L${l} qkv bias`)
        : dummy;
      const wo = t('self_attn.o_proj.weight');
      const gate = t('mlp.gate_proj.weight');
      const down = t('mlp.down_proj.weight');
      const woBuf = projection(checkedData(wo, wo.format), `L${l} o`);
      const gateBuf = projection(checkedData(gate, gate.format), `L${l} gate`);
      const upBuf = projection(checkedData(t('mlp.up_proj.weight'), gate.format), `L${l} up`);
      const downBuf = projection(checkedData(down, down.format), `L${l} down`);
      const n1 = weight(tensorF32(t('input_layernorm.weight')), `L${l} norm1`);
      const n2 = weight(tensorF32(t('post_attention_layernorm.weight')), `L${l} norm2`);
      const kvBytes = opts.numSlots * kvDim * 4;
      const kPool = buf(emptyBuffer(dev, kvBytes, `L${l} K`));
      const vPool = buf(emptyBuffer(dev, kvBytes, `L${l} V`));
      const ropeThreads = ((s.numHeads + s.numKvHeads) * hd) / 2 + kvDim;
      step(`L${l} norm1`, k.rmsnorm(), [normP, this.meta, this.h, n1, xn], perRow);
      step(`L${l} qkv`, k.matmul({ format: fmt, bias: s.attentionBias }), [mmParams(H, qkvDim, fmt), this.meta, xn, wqkv, wqkv, bias, qkv], mmGrid(qkvDim));
      step(`L${l} rope`, k.rope(), [ropeP, this.meta, table, qkv, kPool, vPool], (rows) => [Math.ceil(ropeThreads / 64), rows]);
      step(`L${l} attention`, k.attention(), [attP, this.meta, qkv, kPool, vPool, att], (rows) => k.attentionGrid(rows, s.numHeads));
      step(`L${l} o`, k.matmul({ format: wo.format, residual: true }), [mmParams(qDim, H, wo.format), this.meta, att, woBuf, woBuf, dummy, this.h], mmGrid(H));
      step(`L${l} norm2`, k.rmsnorm(), [normP, this.meta, this.h, n2, xn], perRow);
      step(`L${l} gate/up`, k.matmul({ format: gate.format, gated: true }), [mmParams(H, I, gate.format), this.meta, xn, gateBuf, upBuf, dummy, act], mmGrid(I));
      step(`L${l} down`, k.matmul({ format: down.format, residual: true }), [mmParams(I, H, down.format), this.meta, act, downBuf, downBuf, dummy, this.h], mmGrid(H));
    }

    let readBytes = R * H * 4;
    if (role.head) {
      const V = s.vocabSize;
      const nw = weight(tensorF32(tensors('model.norm.weight')), 'final norm');
      const ht = tensors(s.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
      // A tied head reuses the embedding buffer when this stage also embeds.
      const hw = s.tieWordEmbeddings && embedBuf ? embedBuf : weight(checkedData(ht, ht.format), 'lm head');
      this.logits = buf(emptyBuffer(dev, R * V * 4, 'logits'));
      this.tokens = buf(emptyBuffer(dev, R * 4, 'tokens'));
      const headP = mmParams(H, V, ht.format);
      const sampleP = buf(k.uniform([V, this.rowsOff, META.rowStride, 0], 'sample params'));
      step('final norm', k.rmsnorm(), [normP, this.meta, this.h, nw, xn], perRow);
      step('lm head', k.matmul({ format: ht.format }), [headP, this.meta, xn, hw, hw, dummy, this.logits], mmGrid(V));
      step('sample', k.sample(), [sampleP, this.meta, this.logits, this.tokens], perRow);
      readBytes = Math.ceil(R / 4) * 16 + this.maxLogitsRows * V * 4;
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
    dev.queue.writeBuffer(this.meta, 0, this.metaHost.buffer, 0, used * 4);
    if (!this.role.embed) dev.queue.writeBuffer(this.h, 0, batch.hidden!.buffer, batch.hidden!.byteOffset, R * H * 4);

    const enc = dev.createCommandEncoder({ label: 'stage forward' });
    const pass = enc.beginComputePass();
    for (const st of this.steps) {
      pass.setPipeline(st.pipe);
      pass.setBindGroup(0, st.group);
      pass.dispatchWorkgroups(...st.grid(R));
    }
    const nLogits = batch.logitsRows?.length ?? 0;
    pass.end();
    let bytes: number;
    const V = s.vocabSize;
    if (this.role.head) {
      if (nLogits > this.maxLogitsRows) throw new BadRequestError(`forward: at most ${this.maxLogitsRows} logits rows`);
      const base = Math.ceil(R / 4) * 16;
      enc.copyBufferToBuffer(this.tokens!, 0, this.readback, 0, Math.min(base, this.tokens!.size));
      batch.logitsRows?.forEach((r, i) => {
        if (r < 0 || r >= R) throw new BadRequestError(`forward: logits row ${r} out of range`);
        enc.copyBufferToBuffer(this.logits!, r * V * 4, this.readback, base + i * V * 4, V * 4);
      });
      bytes = base + nLogits * V * 4;
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
      const out: StageOutput = { tokens: new Int32Array(data.slice(0, R * 4)) };
      if (nLogits) {
        const base = Math.ceil(R / 4) * 16;
        out.logits = new Float32Array(data.slice(base, base + nLogits * V * 4));
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
    dev.queue.writeBuffer(this.meta, 0, this.metaHost.buffer, 0, used * 4);
    if (!this.role.embed) dev.queue.writeBuffer(this.h, 0, batch.hidden!.buffer, batch.hidden!.byteOffset, R * this.spec.hiddenSize * 4);
    await dev.queue.onSubmittedWorkDone();
    const acc = new Map<string, { ms: number; count: number }>();
    for (const st of this.steps) {
      const enc = dev.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(st.pipe);
      pass.setBindGroup(0, st.group);
      pass.dispatchWorkgroups(...st.grid(R));
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

