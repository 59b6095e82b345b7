// WGSL sources (shaders/*.wgsl), their per-variant specialisation, and a pipeline cache per device.
import type { WeightFormat } from '../model/types.ts';
import type { GpuContext } from './device.ts';
import matmulWgsl from '../../shaders/matmul.wgsl?raw';
import embedWgsl from '../../shaders/embed.wgsl?raw';
import rmsnormWgsl from '../../shaders/rmsnorm.wgsl?raw';
import ropeWgsl from '../../shaders/rope.wgsl?raw';
import attentionWgsl from '../../shaders/attention.wgsl?raw';
import attentionSerialWgsl from '../../shaders/attention-serial.wgsl?raw';
import sampleWgsl from '../../shaders/sample.wgsl?raw';
import copyWgsl from '../../shaders/copy.wgsl?raw';

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
}

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

function replaceMarker(src: string, marker: string, replacement: string, pattern: RegExp): string {
  if (!src.includes(marker)) throw new Error(`shader source has no marker ${marker}`);
  return src.replace(pattern, replacement);
}

/**
 * Four IEEE halves (two per u32, low half first) to f32, exact for every finite half, subnormals
 * included (inf/NaN are not expected in weights). Integer ops only, with no f32 denormal on the way
 * (adapters may flush those): the same values as unpack2x16float, and faster on SwiftShader.
 */
const WIDEN_HALVES = `
fn widenHalves(p: vec2<u32>) -> vec4<f32> {
  // Exponent + mantissa of each half moved to bits 13..27, the sign to bit 31.
  let lo = (p << vec2<u32>(13u)) & vec2<u32>(0x0fffe000u);
  let hi = (p >> vec2<u32>(3u)) & vec2<u32>(0x0fffe000u);
  let mag = vec4<u32>(lo.x, hi.x, lo.y, hi.y);
  let sgn = vec4<u32>(p.x << 16u, p.x, p.y << 16u, p.y) & vec4<u32>(0x80000000u);
  // Normal: rebias the exponent by 112. Subnormal: m * 2^-24 = (2^-14 + m * 2^-24) - 2^-14.
  let nrm = bitcast<vec4<f32>>(mag + vec4<u32>(0x38000000u));
  let sub = bitcast<vec4<f32>>(mag + vec4<u32>(0x38800000u)) - vec4<f32>(6.103515625e-05);
  let f = select(nrm, sub, (mag & vec4<u32>(0x0f800000u)) == vec4<u32>(0u));
  return bitcast<vec4<f32>>(bitcast<vec4<u32>>(f) | sgn);
}
`;

/** Specialises a weight-reading source (/*@WTYPE*\/ and /*@LOADn*\/ markers) for a weight format. */
export function specialiseWeights(src: string, format: WeightFormat): string {
  if (format === 'f32') return src;
  // f16: two IEEE halves per u32, four weights per vec2<u32>, widened with unpack2x16float.
  let s = src.replace(/\/\*@WTYPE\*\/vec4<f32>/g, 'vec2<u32>');
  for (const n of ['0', '1']) {
    const re = new RegExp(`/\\*@LOAD${n}\\*/return w${n}\\[i\\];`);
    if (re.test(s)) s = s.replace(re, `return widenHalves(w${n}[i]);`);
  }
  return s + WIDEN_HALVES;
}

/**
 * The matmul WGSL for a variant. `subgroups`: reduce the LANES partial sums with subgroup shuffles
 * (no workgroup barriers, which are expensive on SwiftShader) instead of workgroup memory.
 */
export function matmulSource(v: MatmulVariant, lanes = DEFAULT_LANES, subgroups = false): string {
  if (64 % lanes !== 0 || (lanes & (lanes - 1)) !== 0) throw new Error(`lanes must be a power of two dividing 64, got ${lanes}`);
  let s = specialiseWeights(matmulWgsl, v.format);
  if (subgroups && lanes > 1) {
    for (const n of ['0', '1']) {
      s = s.replace(
        new RegExp(`fn reduceLanes${n}\\(t: u32, a: vec4<f32>\\) -> vec4<f32> \\{[\\s\\S]*?\\n\\}\\n`),
        `fn reduceLanes${n}(t: u32, a: vec4<f32>) -> vec4<f32> {\n  var s = a;\n  for (var m = 1u; m < LANES; m <<= 1u) { s = s + subgroupShuffleXor(s, m); }\n  return s;\n}\n`,
      );
    }
    if (s.includes('red0[t] = a;')) throw new Error('matmul: subgroup specialisation failed');
    s = 'enable subgroups;\n' + s;
  }
  s = replaceMarker(s, '/*@LANES*/', `${lanes}u`, /\/\*@LANES\*\/\d+u/);
  s = replaceMarker(s, '/*@GATED*/', String(!!v.gated), /\/\*@GATED\*\/(true|false)/);
  s = replaceMarker(s, '/*@BIAS*/', String(!!v.bias), /\/\*@BIAS\*\/(true|false)/);
  s = replaceMarker(s, '/*@RESIDUAL*/', String(!!v.residual), /\/\*@RESIDUAL\*\/(true|false)/);
  return s;
}

export type BindingResource = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number };

export class Kernels {
  readonly device: GPUDevice;
  readonly lanes: number;
  /** Matmul lane reduction through subgroup shuffles. */
  readonly subgroups: boolean;
  readonly attentionVariant: AttentionVariant;
  private cache: Map<string, GPUComputePipeline>;
  /** Compiled pipelines per device, shared by every Kernels (and Stage) on it. */
  private static caches = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

  constructor(readonly ctx: GpuContext, opts: { lanes?: number; subgroups?: boolean; attention?: AttentionVariant } = {}) {
    this.device = ctx.device;
    let c = Kernels.caches.get(ctx.device);
    if (!c) Kernels.caches.set(ctx.device, (c = new Map()));
    this.cache = c;
    this.lanes = opts.lanes ?? defaultLanes(ctx);
    this.attentionVariant = opts.attention ?? defaultAttention(ctx);
    const minSg = (ctx.adapter.info as GPUAdapterInfo & { subgroupMinSize?: number }).subgroupMinSize ?? 0;
    this.subgroups = (opts.subgroups ?? true) && this.lanes > 1 && ctx.features.subgroups && minSg >= this.lanes;
  }

  private pipeline(key: string, code: () => string): GPUComputePipeline {
    let p = this.cache.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ label: key, code: code() });
      void module.getCompilationInfo().then((info) => {
        for (const m of info.messages) {
          if (m.type === 'error') console.error(`WGSL ${key}:${m.lineNum}:${m.linePos}: ${m.message}`);
        }
      });
      p = this.device.createComputePipeline({ label: key, layout: 'auto', compute: { module, entryPoint: 'main' } });
      this.cache.set(key, p);
    }
    return p;
  }

  matmul(v: MatmulVariant): GPUComputePipeline {
    const key = `matmul:${v.format}:${v.gated ? 'g' : ''}${v.bias ? 'b' : ''}${v.residual ? 'r' : ''}:${this.lanes}${this.subgroups ? 'sg' : ''}`;
    return this.pipeline(key, () => matmulSource(v, this.lanes, this.subgroups));
  }
  embed(format: WeightFormat): GPUComputePipeline {
    return this.pipeline(`embed:${format}`, () => specialiseWeights(embedWgsl, format));
  }
  rmsnorm(): GPUComputePipeline {
    return this.pipeline('rmsnorm', () => rmsnormWgsl);
  }
  rope(): GPUComputePipeline {
    return this.pipeline('rope', () => ropeWgsl);
  }
  attention(): GPUComputePipeline {
    return this.attentionVariant === 'serial' ? this.pipeline('attention-serial', () => attentionSerialWgsl) : this.pipeline('attention', () => attentionWgsl);
  }
  /** Workgroups of an attention dispatch for `rows` rows. */
  attentionGrid(rows: number, numHeads: number): [number, number] {
    return this.attentionVariant === 'serial' ? [Math.ceil((rows * numHeads) / 64), 1] : [numHeads, rows];
  }
  sample(): GPUComputePipeline {
    return this.pipeline('sample', () => sampleWgsl);
  }
  copy(): GPUComputePipeline {
    return this.pipeline('copy', () => copyWgsl);
  }

  /** Bind group whose binding i is resources[i]. */
  bind(pipeline: GPUComputePipeline, resources: BindingResource[], label?: string): GPUBindGroup {
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
export function matmulGrid(outDim: number, lanes: number): [number, number] {
  const groups = Math.ceil(outDim / ((4 * 64) / lanes)); // 4 outputs per LANES threads
  if (groups <= 65535) return [groups, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}

export function matmulParams(k: Kernels, inDim: number, outDim: number): GPUBuffer {
  if (inDim % 4 !== 0) throw new Error(`matmul input size must be a multiple of 4, got ${inDim}`);
  return k.uniform([inDim / 4, outDim, 0, 0], `matmul ${outDim}x${inDim}`);
}

/** Creates a storage buffer with `data` (padded to 4 bytes). */
export function storageBuffer(device: GPUDevice, data: ArrayBufferView, label?: string, extraUsage = 0): GPUBuffer {
  const size = Math.max(16, Math.ceil(data.byteLength / 4) * 4);
  const buf = device.createBuffer({ label, size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC | extraUsage, mappedAtCreation: true });
  new Uint8Array(buf.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  buf.unmap();
  return buf;
}

export function emptyBuffer(device: GPUDevice, bytes: number, label?: string, extraUsage = 0): GPUBuffer {
  return device.createBuffer({ label, size: Math.max(16, Math.ceil(bytes / 16) * 16), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC | extraUsage });
}
