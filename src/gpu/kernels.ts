// WGSL sources (shaders/*.wgsl), their per-variant specialisation, and a pipeline cache per device.
import type { DenseFormat, WeightFormat } from '../model/types.ts';
import { isQuantFormat, quantLayout } from '../model/quant.ts';
import type { GpuContext } from './device.ts';
import { BadRequestError, GpuLimitsError, ShaderCompileError, errorMessage } from '../common/errors.ts';
import matmulWgsl from '../../shaders/matmul.wgsl?raw';
import embedWgsl from '../../shaders/embed.wgsl?raw';
import rmsnormWgsl from '../../shaders/rmsnorm.wgsl?raw';
import ropeWgsl from '../../shaders/rope.wgsl?raw';
import attentionWgsl from '../../shaders/attention.wgsl?raw';
import attentionSerialWgsl from '../../shaders/attention-serial.wgsl?raw';
import attentionReduceWgsl from '../../shaders/attention-reduce.wgsl?raw';
import matmulRopeWgsl from '../../shaders/matmul-rope.wgsl?raw';
import topkWgsl from '../../shaders/topk.wgsl?raw';
import sampleWgsl from '../../shaders/sample.wgsl?raw';
import copyWgsl from '../../shaders/copy.wgsl?raw';
import attendListWgsl from '../../shaders/attend-list.wgsl?raw';
import widenHalvesWgsl from '../../shaders/widen-halves.wgsl?raw';
import dequantWgsl from '../../shaders/dequant.wgsl?raw';

/** Layout of the per-forward `meta` buffer (u32 words) that every kernel reads. */
export const META = {
  /** [0] = rows R, [1] = number of committed slots. */
  headerWords: 8,
  committedOff: 8,
  /** Row record: token, position, slot, ancOff, ancCount, temperature (f32 bits), topK, topP (f32 bits), uniform (f32 bits). */
  rowStride: 12,
} as const;

export interface MatmulVariant {
  format: WeightFormat;
  /** y = silu(x Wgate^T) * (x Wup^T); binding 3 = gate, 4 = up. */
  gated?: boolean;
  /** y += bias (f32). */
  bias?: boolean;
  /** y = y + x W^T (residual add fused into the output write). */
  residual?: boolean;
  /** RMSNorm of x in the prologue (weight at P.normOff of binding 5, eps in P). */
  norm?: boolean;
  /** With norm: the norm weight is already folded into the (f32) weight columns, so x is not multiplied by it. */
  normInW?: boolean;
  /**
   * The fused q/k/v projection's epilogue (shaders/matmul-rope.wgsl): RoPE and the KV-cache write;
   * binding 7 = the RoPE table, 8 = the layer's KV pools. Needs q/k rows permuted at upload.
   */
  rope?: boolean;
  /** With rope: the KV pools hold IEEE halves, two per u32. */
  kv16?: boolean;
}

/** The attention kernel's form: its variant, the KV pools' element type, split-K (first pass). */
export interface AttentionKind {
  kv16?: boolean;
  split?: boolean;
}

/** Most splits of one row's attend list in split-K attention (attend-list.wgsl's SMAX). */
export const ATTENTION_MAX_SPLITS = 16;
/** Most candidates per row of the GPU top-k (topk.wgsl's KMAX). */
export const TOPK_MAX = 16;

/**
 * Threads that share one output of the matmul (they split its input and add their sums in order).
 * 1 suits SwiftShader (a CPU: no barriers, no cross-lane traffic); GPUs want many lanes reading
 * adjacent vec4s of a weight row (reduced with subgroup shuffles where the adapter has subgroups of
 * at least LANES). 32: on an NVIDIA H200 (Vulkan, 8192x8192 weights) R=1 read f16 weights at
 * ~3.2 TB/s with 32 lanes vs ~0.65 with 4 (src/gpu/README.md, "Measured on real hardware").
 */
export function defaultLanes(ctx: GpuContext): number {
  return isCpuAdapter(ctx) ? 1 : DEFAULT_LANES;
}
export const DEFAULT_LANES = 32;

/** 'serial' (one invocation per row and head, no barriers) suits CPU adapters; 'workgroup' GPUs. */
export type AttentionVariant = 'workgroup' | 'serial';

function isCpuAdapter(ctx: GpuContext): boolean {
  return ctx.info.isFallbackAdapter || /swiftshader/i.test(ctx.description);
}

export function defaultAttention(ctx: GpuContext): AttentionVariant {
  return isCpuAdapter(ctx) ? 'serial' : 'workgroup';
}

/**
 * List entries per split of split-K attention (StageOptions.attentionSplit): 256 on GPUs, where one
 * workgroup per head leaves most of the GPU idle at long contexts; 0 (never) on CPU adapters, where
 * splitting showed no gain on SwiftShader (bench:kernels' attention rows).
 */
export function defaultAttentionSplit(ctx: GpuContext): number {
  return isCpuAdapter(ctx) ? 0 : 256;
}

/**
 * Threads per matmul workgroup: 16 on CPU adapters, where each workgroup runs on one core and a
 * 256-output matrix would otherwise be one workgroup (one core); 64 elsewhere.
 */
export function defaultMatmulWorkgroup(ctx: GpuContext): number {
  return isCpuAdapter(ctx) ? 16 : 64;
}

/**
 * Whether f16 matrices are uploaded widened to f32: on CPU adapters, where instructions, not bytes,
 * bound the matmul (SwiftShader: f32 weights ~1.7x faster than widening halves in the kernel).
 */
export function defaultWidenF16(ctx: GpuContext): boolean {
  return isCpuAdapter(ctx);
}

function replaceMarker(src: string, marker: string, replacement: string, pattern: RegExp): string {
  // A bug (shader and loader out of step), not something a caller can cause.
  if (!src.includes(marker)) throw new Error(`shader source has no marker ${marker}`);
  return src.replace(pattern, replacement);
}

/** One WGSL file of a kernel (after specialisation): its name, for compiler messages, and its text. */
export interface WgslPart {
  file: string;
  code: string;
}

/**
 * A kernel's WGSL: one string (named by the kernel's label in messages), or files joined in order.
 * WGSL has no #include: a family's shared declarations live in their own file (attend-list.wgsl,
 * widen-halves.wgsl) that is joined after the kernel's own file, so the kernel's line numbers in
 * compiler messages are those of its file.
 */
export type KernelSource = string | WgslPart[];

/** The parts joined (each from a fresh line), and where a line of the result comes from. */
export function joinWgsl(parts: WgslPart[]): { code: string; locate(line: number): { file: string; line: number } } {
  const starts: number[] = [];
  let line = 1;
  let code = '';
  for (const p of parts) {
    starts.push(line);
    const text = p.code.endsWith('\n') ? p.code : p.code + '\n';
    code += text;
    line += text.split('\n').length - 1;
  }
  return {
    code,
    locate(n) {
      let i = starts.length - 1;
      while (i > 0 && starts[i] > n) i--;
      return { file: parts[i]?.file ?? '?', line: n - (starts[i] ?? 1) + 1 };
    },
  };
}

/** A pipeline created now (usable at once, as WebGPU allows) and the verdict of its compilation. */
export interface PendingKernel {
  pipeline: GPUComputePipeline;
  /**
   * Resolves when the compiler accepted the module and the pipeline; rejects with a
   * ShaderCompileError naming the file and giving the compiler's messages as file:line:column.
   */
  checked: Promise<void>;
}

const MAX_REPORTED = 8;

function compileMessage(label: string, parts: WgslPart[], code: string, locate: (line: number) => { file: string; line: number }, errors: GPUCompilationMessage[]): string {
  const lines = code.split('\n');
  const files = [...new Set(parts.map((p) => p.file))].join(' + ');
  const head = `WGSL kernel ${files}${files === label ? '' : ` (pipeline "${label}")`} does not compile (${errors.length} error${errors.length === 1 ? '' : 's'}):`;
  const body = errors.slice(0, MAX_REPORTED).map((m) => {
    if (!(m.lineNum > 0)) return `  ${parts[0]?.file ?? label}: error: ${m.message}`;
    const at = locate(m.lineNum);
    const src = lines[m.lineNum - 1]?.trim();
    return `  ${at.file}:${at.line}:${m.linePos}: error: ${m.message}${src ? `\n      ${src}` : ''}`;
  });
  if (errors.length > MAX_REPORTED) body.push(`  ... and ${errors.length - MAX_REPORTED} more`);
  return [head, ...body].join('\n');
}

/**
 * Creates the shader module and compute pipeline of a kernel right away (no waiting: pipelines of
 * a stage are all created, and compiled by the implementation, in parallel) and checks them in the
 * background: `checked` rejects with a ShaderCompileError when the WGSL has errors (from
 * getCompilationInfo, with file:line:column) or the pipeline is refused (a validation error).
 */
export function createKernel(device: GPUDevice, label: string, source: KernelSource, entryPoint = 'main'): PendingKernel {
  const parts = typeof source === 'string' ? [{ file: label, code: source }] : source;
  const { code, locate } = joinWgsl(parts);
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label, code });
  const pipeline = device.createComputePipeline({ label, layout: 'auto', compute: { module, entryPoint } });
  const scope = device.popErrorScope();
  const checked = Promise.all([module.getCompilationInfo(), scope]).then(([info, refused]) => {
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length) throw new ShaderCompileError(label, compileMessage(label, parts, code, locate, errors));
    if (refused) {
      const files = [...new Set(parts.map((p) => p.file))].join(' + ');
      throw new ShaderCompileError(label, `WGSL kernel ${files} (pipeline "${label}", entry point ${entryPoint}) compiled, but WebGPU refused its pipeline: ${refused.message}`);
    }
  });
  return { pipeline, checked };
}

/**
 * Compiles a kernel and waits for the verdict: the pipeline, or a ShaderCompileError. The same path
 * as every pipeline of Kernels (createKernel), awaited.
 */
export async function compileKernel(device: GPUDevice, label: string, source: KernelSource, entryPoint = 'main'): Promise<GPUComputePipeline> {
  const k = createKernel(device, label, source, entryPoint);
  await k.checked;
  return k.pipeline;
}

/**
 * The f16 or quantized form of a weight-reading file (/*@WTYPE*\/ and /*@LOADn*\/ markers), plus
 * widenHalves (and the dequantizers). Quantized weights are matmul-only: their loads read P.scaleOff.
 */
function weightParts(file: string, src: string, format: WeightFormat): WgslPart[] {
  if (format === 'f32') return [{ file, code: src }];
  // f16: two IEEE halves per u32, four weights per vec2<u32>, widened with integer operations.
  // Q8_0 / Q4_0 (dequant.wgsl): per weight vec4, one u32 of quants and the u32 holding its block's scale.
  const q = format === 'q8_0' ? 'Q8_0' : format === 'q4_0' ? 'Q4_0' : null;
  let s = src.replace(/\/\*@WTYPE\*\/vec4<f32>/g, q ? 'u32' : 'vec2<u32>');
  for (const n of ['0', '1']) {
    const re = new RegExp(`/\\*@LOAD${n}\\*/return w${n}\\[i\\];`);
    const load = q ? `dequant${q}(i, w${n}[word${q}(i)], w${n}[P.scaleOff + (i >> 4u)])` : `widenHalves(w${n}[i])`;
    if (re.test(s)) s = s.replace(re, `return ${load};`);
  }
  const widen = { file: 'widen-halves.wgsl', code: widenHalvesWgsl };
  return q ? [{ file, code: s }, { file: 'dequant.wgsl', code: dequantWgsl }, widen] : [{ file, code: s }, widen];
}

/** Specialises a weight-reading source (/*@WTYPE*\/ and /*@LOADn*\/ markers) for a weight format. */
export function specialiseWeights(src: string, format: DenseFormat): string {
  return joinWgsl(weightParts('kernel', src, format)).code;
}

/**
 * The f16 form of a KV-reading attention source (/*@KV4*\/, /*@KV1*\/ types and /*@KLOAD*\/,
 * /*@VLOAD*\/, /*@VLOAD1*\/ loads): pools of IEEE halves two per u32, widened exactly (widen-halves.wgsl).
 */
function kvParts(file: string, src: string, kv16: boolean): WgslPart[] {
  if (!kv16) return [{ file, code: src }];
  const s = src
    .replace(/\/\*@KV4\*\/vec4<f32>/g, 'vec2<u32>')
    .replace(/\/\*@KV1\*\/f32/g, 'u32')
    .replace(/\/\*@KLOAD\*\/return kPool\[i\];/, 'return widenHalves(kPool[i]);')
    .replace(/\/\*@VLOAD\*\/return vPool\[i\];/, 'return widenHalves(vPool[i]);')
    .replace(/\/\*@VLOAD1\*\/return vPool\[i\];/, 'return widenHalf(vPool[i >> 1u] >> ((i & 1u) << 4u));');
  return [{ file, code: s }, { file: 'widen-halves.wgsl', code: widenHalvesWgsl }];
}

/** matmul.wgsl's reduceLanes, and its subgroup form. */
const REDUCE_LANES = /fn reduceLanes\(t: u32, a: vec4<f32>\) -> vec4<f32> \{[\s\S]*?\n\}\n/;
const REDUCE_LANES_SUBGROUP = 'fn reduceLanes(t: u32, a: vec4<f32>) -> vec4<f32> {\n  var s = a;\n  for (var m = 1u; m < LANES; m <<= 1u) { s = s + subgroupShuffleXor(s, m); }\n  return s;\n}\n';

function matmulParts(v: MatmulVariant, lanes: number, subgroups: boolean, wg = 64): WgslPart[] {
  if (64 % lanes !== 0 || (lanes & (lanes - 1)) !== 0) throw new BadRequestError(`matmul lanes must be a power of two dividing 64, got ${lanes}`);
  if (![16, 32, 64].includes(wg) || wg % lanes !== 0) throw new BadRequestError(`matmul workgroup size must be 16, 32 or 64 and a multiple of lanes, got ${wg}`);
  const [main, ...rest] = weightParts('matmul.wgsl', matmulWgsl, v.format);
  let s = main.code;
  if (subgroups && lanes > 1) {
    // Same number of lines (padded), so compiler messages keep matmul.wgsl's line numbers.
    s = s.replace(REDUCE_LANES, (old) => REDUCE_LANES_SUBGROUP + '\n'.repeat(old.split('\n').length - REDUCE_LANES_SUBGROUP.split('\n').length));
    if (s.includes('red[t] = a;')) throw new Error('matmul: subgroup specialisation failed');
    s = 'enable subgroups; ' + s; // on line 1 (a comment there), for the same reason
  }
  s = replaceMarker(s, '/*@LANES*/', `${lanes}u`, /\/\*@LANES\*\/\d+u/);
  s = replaceMarker(s, '/*@WG*/', `${wg}u`, /\/\*@WG\*\/\d+u/);
  s = replaceMarker(s, '/*@GATED*/', String(!!v.gated), /\/\*@GATED\*\/(true|false)/);
  s = replaceMarker(s, '/*@BIAS*/', String(!!v.bias), /\/\*@BIAS\*\/(true|false)/);
  s = replaceMarker(s, '/*@RESIDUAL*/', String(!!v.residual), /\/\*@RESIDUAL\*\/(true|false)/);
  s = replaceMarker(s, '/*@NORM*/', String(!!v.norm), /\/\*@NORM\*\/(true|false)/);
  s = replaceMarker(s, '/*@ROPE*/', String(!!v.rope), /\/\*@ROPE\*\/(true|false)/);
  s = replaceMarker(s, '/*@NORM_IN_W*/', String(!!v.normInW), /\/\*@NORM_IN_W\*\/(true|false)/);
  if (v.rope && v.gated) throw new BadRequestError('matmul: the rope epilogue is for the q/k/v projection, not the gated MLP');
  // The rope epilogue declares bindings 7 and 8; the other variants get a stub (no extra bindings).
  const epilogue = v.rope
    ? { file: 'matmul-rope.wgsl', code: replaceMarker(matmulRopeWgsl, '/*@KV16*/', String(!!v.kv16), /\/\*@KV16\*\/(true|false)/) }
    : { file: 'matmul.wgsl (no rope)', code: 'fn ropeStore(r: u32, o0: u32, acc: vec4<f32>) {}\n' };
  return [{ file: main.file, code: s }, epilogue, ...rest];
}

/**
 * The matmul WGSL for a variant. `subgroups`: reduce the LANES partial sums with subgroup shuffles
 * (no workgroup barriers, which are expensive on SwiftShader) instead of workgroup memory.
 */
export function matmulSource(v: MatmulVariant, lanes = DEFAULT_LANES, subgroups = false): string {
  return joinWgsl(matmulParts(v, lanes, subgroups)).code;
}

export type BindingResource = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number };

export class Kernels {
  readonly device: GPUDevice;
  readonly lanes: number;
  /** Threads per matmul workgroup (matmulGrid's `wg`). */
  readonly matmulWorkgroup: number;
  /** Matmul lane reduction through subgroup shuffles. */
  readonly subgroups: boolean;
  readonly attentionVariant: AttentionVariant;
  private cache: Map<string, PendingKernel>;
  /** The compilation checks of the pipelines this Kernels handed out (see ready()). */
  private handedOut = new Set<Promise<void>>();
  /** Pipelines per device, shared by every Kernels (and Stage) on it. */
  private static caches = new WeakMap<GPUDevice, Map<string, PendingKernel>>();

  constructor(readonly ctx: GpuContext, opts: { lanes?: number; subgroups?: boolean; attention?: AttentionVariant; matmulWorkgroup?: number } = {}) {
    this.device = ctx.device;
    let c = Kernels.caches.get(ctx.device);
    if (!c) Kernels.caches.set(ctx.device, (c = new Map()));
    this.cache = c;
    this.lanes = opts.lanes ?? defaultLanes(ctx);
    this.matmulWorkgroup = opts.matmulWorkgroup ?? 64;
    this.attentionVariant = opts.attention ?? defaultAttention(ctx);
    const minSg = (ctx.adapter.info as GPUAdapterInfo & { subgroupMinSize?: number }).subgroupMinSize ?? 0;
    this.subgroups = (opts.subgroups ?? true) && this.lanes > 1 && ctx.features.subgroups && minSg >= this.lanes;
  }

  private pipeline(key: string, source: () => KernelSource): GPUComputePipeline {
    let p = this.cache.get(key);
    if (!p) {
      p = createKernel(this.device, key, source());
      // Also on the console for callers that never ask (ready() rejects with the same error).
      p.checked.catch((e: unknown) => console.error(errorMessage(e)));
      this.cache.set(key, p);
    }
    this.handedOut.add(p.checked);
    return p.pipeline;
  }

  /**
   * Resolves when every pipeline this Kernels has handed out so far has compiled (they compile in
   * parallel; this only waits for the verdicts).
   * @throws ShaderCompileError naming the kernel's file(s), with the compiler's file:line:column messages.
   */
  async ready(): Promise<void> {
    await Promise.all(this.handedOut);
  }

  matmul(v: MatmulVariant): GPUComputePipeline {
    const flags = `${v.gated ? 'g' : ''}${v.bias ? 'b' : ''}${v.residual ? 'r' : ''}${v.norm ? (v.normInW ? 'N' : 'n') : ''}${v.rope ? (v.kv16 ? 'p16' : 'p') : ''}`;
    const key = `matmul:${v.format}:${flags}:${this.lanes}${this.subgroups ? 'sg' : ''}:wg${this.matmulWorkgroup}`;
    return this.pipeline(key, () => matmulParts(v, this.lanes, this.subgroups, this.matmulWorkgroup));
  }
  embed(format: WeightFormat): GPUComputePipeline {
    if (isQuantFormat(format)) throw new BadRequestError(`the embedding is never quantized (format ${format})`);
    return this.pipeline(`embed:${format}`, () => weightParts('embed.wgsl', embedWgsl, format));
  }
  rmsnorm(): GPUComputePipeline {
    return this.pipeline('rmsnorm', () => [{ file: 'rmsnorm.wgsl', code: rmsnormWgsl }]);
  }
  rope(): GPUComputePipeline {
    return this.pipeline('rope', () => [{ file: 'rope.wgsl', code: ropeWgsl }]);
  }
  /** Attention (bindings: params, meta, qkv, K pool, V pool, out): plain, or split-K's first pass. */
  attention(kind: AttentionKind = {}): GPUComputePipeline {
    const serial = this.attentionVariant === 'serial';
    const file = serial ? 'attention-serial.wgsl' : 'attention.wgsl';
    const key = `${serial ? 'attention-serial' : 'attention'}${kind.kv16 ? ':kv16' : ''}${kind.split ? ':split' : ''}`;
    return this.pipeline(key, () => {
      const [main, ...rest] = kvParts(file, serial ? attentionSerialWgsl : attentionWgsl, !!kind.kv16);
      return [main, attendListPart(!!kind.split), ...rest];
    });
  }
  /** Split-K attention's second pass (bindings: params, meta, out). */
  attentionReduce(): GPUComputePipeline {
    return this.pipeline('attention-reduce', () => [{ file: 'attention-reduce.wgsl', code: attentionReduceWgsl }, attendListPart(true)]);
  }
  /** Workgroups of an attention dispatch for `rows` rows (split: the first pass of split-K). */
  attentionGrid(rows: number, numHeads: number, split = false): [number, number, number] {
    const s = split ? ATTENTION_MAX_SPLITS : 1;
    return this.attentionVariant === 'serial' ? [Math.ceil((rows * numHeads * s) / 64), 1, 1] : [numHeads, rows, s];
  }
  /** Top-k candidates and their log-probabilities per row of logits (bindings: params, meta, logits, out). */
  topk(): GPUComputePipeline {
    return this.pipeline('topk', () => [{ file: 'topk.wgsl', code: topkWgsl }]);
  }
  sample(): GPUComputePipeline {
    return this.pipeline('sample', () => [{ file: 'sample.wgsl', code: sampleWgsl }]);
  }
  copy(): GPUComputePipeline {
    return this.pipeline('copy', () => [{ file: 'copy.wgsl', code: copyWgsl }]);
  }

  /**
   * Bind group whose binding i is resources[i].
   * @throws GpuLimitsError when a storage binding is larger than the device allows.
   */
  bind(pipeline: GPUComputePipeline, resources: BindingResource[], label?: string): GPUBindGroup {
    const max = this.device.limits?.maxStorageBufferBindingSize;
    resources.forEach((r, i) => {
      const b = r instanceof GPUBuffer ? { buffer: r } : r;
      const bytes = b.size ?? b.buffer.size - (b.offset ?? 0);
      if (max && b.buffer.usage & GPUBufferUsage.STORAGE && bytes > max) {
        throw new GpuLimitsError(
          `${label || b.buffer.label || 'a buffer'}: binding ${i} needs ${mib(bytes)} in one piece, more than this GPU allows (maxStorageBufferBindingSize ${mib(max)}): use a smaller model, or spread its layers over more stages.`,
        );
      }
    });
    return this.device.createBindGroup({
      label,
      layout: pipeline.getBindGroupLayout(0),
      entries: resources.map((r, i) => ({ binding: i, resource: r instanceof GPUBuffer ? { buffer: r } : r })),
    });
  }

  /** A small uniform buffer holding 32-bit words (u32 unless given as {f: number}). */
  uniform(words: (number | { f: number })[], label?: string): GPUBuffer {
    const n = Math.max(4, Math.ceil(words.length / 4) * 4);
    const data = new ArrayBuffer(n * 4);
    const u = new Uint32Array(data);
    const f = new Float32Array(data);
    words.forEach((w, i) => {
      if (typeof w === 'number') u[i] = w >>> 0;
      else f[i] = w.f;
    });
    const buf = this.device.createBuffer({ label, size: data.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.device.queue.writeBuffer(buf, 0, data);
    return buf;
  }
}

/** Workgroups for a matmul over `outDim` outputs (2-D when more than 65535 are needed). */
export function matmulGrid(outDim: number, lanes: number, wg = 64): [number, number] {
  const groups = Math.ceil(outDim / ((4 * wg) / lanes)); // 4 outputs per LANES threads
  if (groups <= 65535) return [groups, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}

/** What the fused matmul roles read besides the weights (MatmulVariant.norm / .rope). */
export interface MatmulRoles {
  /** norm: RMSNorm epsilon, and the f32 offset of the norm weight in binding 5. */
  norm?: { eps: number; offset: number };
  /** rope: the q/k/v layout, the RoPE table's length, and the u32 offset of the V pool in binding 8. */
  rope?: { rowsOff: number; headDim: number; qDim: number; kvDim: number; maxPos: number; vOff: number };
}

/**
 * The matmul's parameters for weights [outDim, inDim] in `format` (quantized formats: where the
 * block scales start), and what its fused roles need.
 * @throws BadRequestError when inDim is not a multiple of 4; ModelFormatError when a quantized
 * matrix's inDim is not a multiple of 32.
 */
export function matmulParams(k: Kernels, inDim: number, outDim: number, format: WeightFormat = 'f32', roles: MatmulRoles = {}): GPUBuffer {
  if (inDim % 4 !== 0) throw new BadRequestError(`matmul input size must be a multiple of 4, got ${inDim}`);
  const scaleOff = isQuantFormat(format) ? quantLayout([outDim, inDim], format, `matmul ${outDim}x${inDim}`).scaleOffset : 0;
  const n = roles.norm;
  const p = roles.rope;
  return k.uniform(
    [inDim / 4, outDim, scaleOff, { f: n?.eps ?? 0 }, n?.offset ?? 0, p?.rowsOff ?? 0, META.rowStride, p?.headDim ?? 0, p?.qDim ?? 0, p?.kvDim ?? 0, p?.maxPos ?? 0, p?.vOff ?? 0, 0, 0, 0, 0],
    `matmul ${outDim}x${inDim}`,
  );
}

/** The attention kernels' parameters (attend-list.wgsl); `split`: entries per split and where partials start. */
export function attentionParams(
  k: Kernels,
  a: { numHeads: number; numKvHeads: number; headDim: number; rowsOff: number; split?: { min: number; partOff: number } },
): GPUBuffer {
  const s = a.split;
  return k.uniform(
    [a.numHeads, a.numKvHeads, a.headDim, a.rowsOff, META.rowStride, META.committedOff, { f: 1 / Math.sqrt(a.headDim) }, s?.min ?? 0, s?.partOff ?? 0, 0, 0, 0],
    'attention params',
  );
}

function attendListPart(split: boolean): WgslPart {
  return { file: 'attend-list.wgsl', code: replaceMarker(attendListWgsl, '/*@SPLIT*/', String(split), /\/\*@SPLIT\*\/(true|false)/) };
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 3 : 0)} MiB`;
}

/** GpuLimitsError when a buffer of `size` bytes is over the device's maxBufferSize. */
function checkBufferSize(device: GPUDevice, size: number, label?: string): void {
  const max = device.limits?.maxBufferSize;
  if (max && size > max) {
    throw new GpuLimitsError(
      `${label || 'a buffer'}: ${mib(size)} in one buffer, more than this GPU allows (maxBufferSize ${mib(max)}): use a smaller model, or spread its layers over more stages.`,
    );
  }
}

/**
 * Creates a storage buffer with `data`, zero-padded to 16 bytes (so vec4 arrays cover every value).
 * @throws GpuLimitsError when it is over maxBufferSize.
 */
export function storageBuffer(device: GPUDevice, data: ArrayBufferView, label?: string, extraUsage = 0): GPUBuffer {
  const size = Math.max(16, Math.ceil(data.byteLength / 16) * 16);
  checkBufferSize(device, size, label);
  const buf = device.createBuffer({ label, size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC | extraUsage, mappedAtCreation: true });
  new Uint8Array(buf.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  buf.unmap();
  return buf;
}

/** A zeroed storage buffer of at least `bytes` (rounded up to 16). @throws GpuLimitsError when it is over maxBufferSize. */
export function emptyBuffer(device: GPUDevice, bytes: number, label?: string, extraUsage = 0): GPUBuffer {
  const size = Math.max(16, Math.ceil(bytes / 16) * 16);
  checkBufferSize(device, size, label);
  return device.createBuffer({ label, size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC | extraUsage });
}
