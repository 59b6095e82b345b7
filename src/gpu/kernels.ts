// WGSL sources (shaders/*.wgsl), their per-variant specialisation, and a pipeline cache per device.
import type { WeightFormat } from '../model/types.ts';
import type { GpuContext } from './device.ts';
import matmulWgsl from '../../shaders/matmul.wgsl?raw';
import embedWgsl from '../../shaders/embed.wgsl?raw';
import rmsnormWgsl from '../../shaders/rmsnorm.wgsl?raw';
import ropeWgsl from '../../shaders/rope.wgsl?raw';
import attentionWgsl from '../../shaders/attention.wgsl?raw';
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

/** Threads that share one output of the matmul (they split its input and add their sums in order). */
export const DEFAULT_LANES = 4;

function replaceMarker(src: string, marker: string, replacement: string, pattern: RegExp): string {
  if (!src.includes(marker)) throw new Error(`shader source has no marker ${marker}`);
  return src.replace(pattern, replacement);
}

/** Specialises a weight-reading source (/*@WTYPE*\/ and /*@LOADn*\/ markers) for a weight format. */
export function specialiseWeights(src: string, format: WeightFormat): string {
  if (format === 'f32') return src;
  // f16: two IEEE halves per u32, four weights per vec2<u32>, widened with unpack2x16float.
  let s = src.replace(/\/\*@WTYPE\*\/vec4<f32>/g, 'vec2<u32>');
  for (const n of ['0', '1']) {
    const re = new RegExp(`/\\*@LOAD${n}\\*/return w${n}\\[i\\];`);
    if (re.test(s)) s = s.replace(re, `let p = w${n}[i]; return vec4<f32>(unpack2x16float(p.x), unpack2x16float(p.y));`);
  }
  return s;
}

export function matmulSource(v: MatmulVariant, lanes = DEFAULT_LANES): string {
  if (64 % lanes !== 0) throw new Error(`lanes must divide 64, got ${lanes}`);
  let s = specialiseWeights(matmulWgsl, v.format);
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
  private cache = new Map<string, GPUComputePipeline>();

  constructor(readonly ctx: GpuContext, opts: { lanes?: number } = {}) {
    this.device = ctx.device;
    this.lanes = opts.lanes ?? DEFAULT_LANES;
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
    const key = `matmul:${v.format}:${v.gated ? 'g' : ''}${v.bias ? 'b' : ''}${v.residual ? 'r' : ''}:${this.lanes}`;
    return this.pipeline(key, () => matmulSource(v, this.lanes));
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
    return this.pipeline('attention', () => attentionWgsl);
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
  const groups = Math.ceil(outDim / (64 / lanes));
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
