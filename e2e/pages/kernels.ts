// Checks of e2e/pages/kernel-suite.ts: every kernel against the CPU reference (tests/support/cpu-reference.ts),
// batch independence, and whole stages (random tiny Llama) against the CPU reference forward. Runs
// wherever navigator.gpu is: in the page of e2e/kernels.spec.ts, or in Node (e2e/node-gpu/node-gpu-main.ts).
import type { DenseFormat, WeightFormat, ModelSpec, StageRole, HostTensor, QuantFormat } from '../../src/model/types.ts';
import type { RowBatch, RowSampling } from '../../src/gpu/types.ts';
import { createGpuContext, type GpuContext } from '../../src/gpu/device.ts';
import { Kernels, META, DEFAULT_LANES, TOPK_MAX, attentionParams, matmulGrid, matmulParams, storageBuffer, emptyBuffer, specialiseWeights, compileKernel, type BindingResource, type KernelSource } from '../../src/gpu/kernels.ts';
import { ShaderCompileError, errorMessage } from '../../src/common/errors.ts';
import { Stage, type StageOptions } from '../../src/gpu/stage.ts';
import { RefStage, refMatmulW, refRmsNorm, refEmbed, refRope, refAttention, refSample, silu } from '../../tests/support/cpu-reference.ts';
import { f16BitsToF32, f32ToF16Bits, ropeTable } from '../../src/common/numerics.ts';
import { logSoftmax, topKIndices } from '../../src/speculative/sampling.ts';
import { tensorF32 } from '../../src/model/weights.ts';
import { seededRandom } from '../../src/common/numerics.ts';
import { randomArray, hostTensor, tinyLlamaSpec, randomLlamaTensors, getter } from '../../src/gpu/synthetic-model.ts';
import type { Check } from './kernel-suite.ts';

export type { Check };

let ctxP: Promise<GpuContext> | undefined;
function gpu(): Promise<GpuContext> {
  ctxP ??= createGpuContext();
  return ctxP;
}

async function readBuffer(device: GPUDevice, src: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
  const rb = device.createBuffer({ size: Math.ceil(bytes / 16) * 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(src, 0, rb, 0, Math.min(src.size, rb.size));
  device.queue.submit([enc.finish()]);
  await rb.mapAsync(GPUMapMode.READ);
  const out = rb.getMappedRange().slice(0, bytes);
  rb.destroy();
  return out;
}

async function runOne(k: Kernels, pipe: GPUComputePipeline, res: BindingResource[], grid: [number, number, number?]): Promise<void> {
  const dev = k.device;
  dev.pushErrorScope('validation');
  const enc = dev.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipe);
  pass.setBindGroup(0, k.bind(pipe, res));
  pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
  pass.end();
  dev.queue.submit([enc.finish()]);
  const err = await dev.popErrorScope();
  if (err) throw new Error(err.message);
}

interface MetaRow {
  token?: number;
  position?: number;
  slot?: number;
  ancestors?: number[];
  sampling?: RowSampling;
}

const ROWS_OFF = 64;
/** Builds a meta buffer: committed slots at META.committedOff (up to 56 of them... or more, see below), row records, ancestors. */
function buildMeta(rows: MetaRow[], committed: number[] = []): { data: Uint32Array; rowsOff: number } {
  const rowsOff = Math.max(ROWS_OFF, META.committedOff + committed.length);
  const anc = rows.reduce((a, r) => a + (r.ancestors?.length ?? 0), 0);
  const m = new Uint32Array(rowsOff + rows.length * META.rowStride + anc + 4);
  const f = new Float32Array(m.buffer);
  m[0] = rows.length;
  m[1] = committed.length;
  m.set(committed, META.committedOff);
  let a = rowsOff + rows.length * META.rowStride;
  rows.forEach((r, i) => {
    const o = rowsOff + i * META.rowStride;
    m[o] = r.token ?? 0;
    m[o + 1] = r.position ?? 0;
    m[o + 2] = r.slot ?? 0;
    m[o + 3] = a;
    m[o + 4] = r.ancestors?.length ?? 0;
    f[o + 5] = r.sampling?.temperature ?? 0;
    m[o + 6] = r.sampling?.topK ?? 0;
    f[o + 7] = r.sampling?.topP ?? 1;
    f[o + 8] = r.sampling?.uniform ?? 0;
    if (r.ancestors) m.set(r.ancestors, a);
    a += r.ancestors?.length ?? 0;
  });
  return { data: m, rowsOff };
}

function maxAbs(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

function check(out: Check[], name: string, got: Float32Array, want: Float32Array, tol: number): void {
  const e = maxAbs(got, want);
  out.push({ name, maxErr: e, tol, ok: e <= tol });
}

export async function adapter(): Promise<{ description: string; features: Record<string, boolean>; info: GpuContext['info'] }> {
  const c = await gpu();
  return { description: c.description, features: { ...c.features }, info: { ...c.info } };
}

// ---- matmul ---------------------------------------------------------------------------------------

/** Matmul variants under test (the fused roles too: RMSNorm prologue alone, with bias, with the gated MLP). */
const MATMUL_VARIANTS = [{}, { bias: true }, { residual: true }, { gated: true }, { bias: true, residual: true }, { norm: true }, { norm: true, bias: true }, { norm: true, gated: true }];
const NORM_EPS = 1e-5;

/** Binding 5 of a matmul test: a bias [out], zero-padded to a multiple of 4, then a norm weight [in]. */
function matmulVecs(outDim: number, inDim: number, rand: () => number): { vecs: Float32Array; b: Float32Array; n: Float32Array; roles: { norm: { eps: number; offset: number } } } {
  const b = randomArray(outDim, rand);
  const n = randomArray(inDim, rand, 0.5, 1);
  const offset = Math.ceil(outDim / 4) * 4;
  const vecs = new Float32Array(offset + inDim);
  vecs.set(b);
  vecs.set(n, offset);
  return { vecs, b, n, roles: { norm: { eps: NORM_EPS, offset } } };
}

/** Matmul configurations under test: the adapter's default, the multi-lane GPU variants, 64- and 16-thread workgroups. */
function matmulConfigs(c: GpuContext): { name: string; k: Kernels; full: boolean }[] {
  const configs = [{ name: 'default', k: new Kernels(c), full: true }, { name: 'lanes=1 workgroup 16', k: new Kernels(c, { lanes: 1, matmulWorkgroup: 16 }), full: false }];
  const same = (a: Kernels, b: Kernels) => a.lanes === b.lanes && a.subgroups === b.subgroups && a.matmulWorkgroup === b.matmulWorkgroup;
  for (const lanes of [1, 4, DEFAULT_LANES]) {
    for (const subgroups of [true, false]) {
      const k = new Kernels(c, { lanes, subgroups });
      if (configs.some((x) => same(x.k, k))) continue;
      configs.push({ name: `lanes=${lanes}${k.subgroups ? ' subgroups' : ''}`, k, full: false });
    }
  }
  return configs;
}

interface MatmulCases {
  /** [inDim, outDim] pairs. */
  shapes: [number, number][];
  rows: number[];
}

/**
 * Every matmul variant (plain, bias, residual, gated, bias + residual) of `formats` against the CPU
 * reference (refMatmulW: quantized weights decoded from GGML's block bytes), for the adapter's
 * default kernels (`full` cases) and the other lane configurations (`partial`).
 */
async function matmulChecks(formats: WeightFormat[], full: MatmulCases, partial: MatmulCases, seed: number): Promise<Check[]> {
  const c = await gpu();
  const dev = c.device;
  const rand = seededRandom(seed);
  const out: Check[] = [];
  for (const { name: cfg, k, full: isFull } of matmulConfigs(c)) {
    const { shapes, rows } = isFull ? full : partial;
    for (const format of formats) {
      for (const [inDim, outDim] of shapes) {
        for (const R of rows) {
          for (const v of MATMUL_VARIANTS) {
            const x = randomArray(R * inDim, rand, 'norm' in v ? 3 : 1);
            const w0t = hostTensor('w0', [outDim, inDim], randomArray(outDim * inDim, rand, 1 / Math.sqrt(inDim)), format);
            const w1t = hostTensor('w1', [outDim, inDim], randomArray(outDim * inDim, rand, 1 / Math.sqrt(inDim)), format);
            const { vecs, b, n, roles } = matmulVecs(outDim, inDim, rand);
            const y0 = randomArray(R * outDim, rand);
            const meta = storageBuffer(dev, buildMeta(Array.from({ length: R }, () => ({}))).data);
            const bufs = [meta, storageBuffer(dev, x), storageBuffer(dev, w0t.data), storageBuffer(dev, w1t.data), storageBuffer(dev, vecs), storageBuffer(dev, y0)];
            const params = matmulParams(k, inDim, outDim, format, roles);
            await runOne(k, k.matmul({ format, ...v }), [params, ...bufs], matmulGrid(outDim, k.lanes, k.matmulWorkgroup));
            const got = new Float32Array(await readBuffer(dev, bufs[5], R * outDim * 4));
            // NORM: RMSNorm of x (the CPU reference of rmsnorm.wgsl) feeding the plain product.
            const xIn = 'norm' in v ? refRmsNorm(x, R, inDim, n, NORM_EPS) : x;
            let want = refMatmulW(xIn, R, w0t, 'bias' in v ? b : undefined);
            if ('gated' in v) {
              const u = refMatmulW(xIn, R, w1t);
              want = want.map((g, i) => silu(g) * u[i]);
            }
            if ('residual' in v) want = want.map((a, i) => y0[i] + a);
            check(out, `matmul [${cfg}] ${format} ${outDim}x${inDim} R=${R} ${JSON.stringify(v)}`, got, want, 2e-5 * Math.sqrt(inDim) + 1e-6);
            for (const bb of [...bufs, params]) bb.destroy();
          }
        }
      }
    }
  }
  return out;
}

export function testMatmul(): Promise<Check[]> {
  return matmulChecks(['f32', 'f16'], { shapes: [[200, 77], [64, 301], [172, 64], [32, 1]], rows: [1, 5, 64] }, { shapes: [[200, 77], [32, 1]], rows: [1, 6] }, 11);
}

/** Q8_0 / Q4_0 weights: input sizes multiples of 32, odd output sizes, 1, 3, 17 and 64 rows. */
export function testMatmulQuant(): Promise<Check[]> {
  return matmulChecks(['q8_0', 'q4_0'], { shapes: [[224, 77], [64, 301], [160, 63], [32, 1]], rows: [1, 3, 17, 64] }, { shapes: [[224, 77], [32, 1]], rows: [1, 17] }, 12);
}

// ---- embedding, rmsnorm, rope ---------------------------------------------------------------------

export async function testSmallKernels(): Promise<Check[]> {
  const c = await gpu();
  const k = new Kernels(c);
  const dev = c.device;
  const rand = seededRandom(5);
  const out: Check[] = [];
  // Embedding gather.
  for (const format of ['f32', 'f16'] as WeightFormat[]) {
    const vocab = 301;
    const H = 200;
    const Et = hostTensor('E', [vocab, H], randomArray(vocab * H, rand), format);
    if (format === 'f16') {
      // Every subnormal half (both signs) and a sweep of normal ones: widening must be exact.
      const d = Et.data as Uint16Array;
      for (let i = 0; i < 0x400; i++) {
        d[2 * i] = i;
        d[2 * i + 1] = 0x8000 | i;
      }
      for (let i = 0x800; i < 64 * H; i++) d[i] = (i * 7919) & 0xffff & ~(((i * 7919) & 0x7c00) === 0x7c00 ? 0x4000 : 0);
    }
    for (const R of [1, 64]) {
      const rows = Array.from({ length: R }, (_, i) => ({ token: R === 64 ? i : 11 }));
      const { data, rowsOff } = buildMeta(rows);
      const meta = storageBuffer(dev, data);
      const eb = storageBuffer(dev, Et.data);
      const h = emptyBuffer(dev, R * H * 4);
      await runOne(k, k.embed(format), [k.uniform([H / 4, rowsOff, META.rowStride, 0]), meta, eb, h], [Math.ceil(H / 4 / 64), R]);
      const got = new Float32Array(await readBuffer(dev, h, R * H * 4));
      check(out, `embed ${format} R=${R}`, got, refEmbed(tensorF32(Et), H, rows.map((r) => r.token)), 0);
    }
  }
  // RMSNorm.
  for (const H of [200, 64, 2048]) {
    for (const R of [1, 64]) {
      const x = randomArray(R * H, rand, 3);
      const w = randomArray(H, rand, 0.5, 1);
      const meta = storageBuffer(dev, buildMeta(Array.from({ length: R }, () => ({}))).data);
      const o = emptyBuffer(dev, R * H * 4);
      await runOne(k, k.rmsnorm(), [k.uniform([H / 4, { f: 1e-5 }, 0, 0]), meta, storageBuffer(dev, x), storageBuffer(dev, w), o], [R, 1]);
      const got = new Float32Array(await readBuffer(dev, o, R * H * 4));
      check(out, `rmsnorm H=${H} R=${R}`, got, refRmsNorm(x, R, H, w, 1e-5), 2e-5);
    }
  }
  // RoPE + KV write.
  for (const [nH, nKv, hd] of [[4, 2, 32], [3, 1, 64], [8, 8, 16]]) {
    for (const R of [1, 7, 64]) {
      const rowLen = (nH + 2 * nKv) * hd;
      const numSlots = 80;
      const maxPos = 600;
      const rows = Array.from({ length: R }, (_, i) => ({ position: Math.floor(rand() * maxPos), slot: (i * 13 + 5) % numSlots }));
      const { data, rowsOff } = buildMeta(rows);
      const qkvHost = randomArray(R * rowLen, rand);
      const table = ropeTable(10000, hd, maxPos);
      const qkv = storageBuffer(dev, qkvHost);
      const kp = emptyBuffer(dev, numSlots * nKv * hd * 4);
      const vp = emptyBuffer(dev, numSlots * nKv * hd * 4);
      const threads = ((nH + nKv) * hd) / 2 + nKv * hd;
      await runOne(k, k.rope(), [k.uniform([nH, nKv, hd, rowsOff, META.rowStride, maxPos, 0, 0]), storageBuffer(dev, data), storageBuffer(dev, table), qkv, kp, vp], [Math.ceil(threads / 64), R]);
      const gotQkv = new Float32Array(await readBuffer(dev, qkv, R * rowLen * 4));
      const gotK = new Float32Array(await readBuffer(dev, kp, numSlots * nKv * hd * 4));
      const gotV = new Float32Array(await readBuffer(dev, vp, numSlots * nKv * hd * 4));
      const wantQ = new Float32Array(R * nH * hd);
      const gq = new Float32Array(R * nH * hd);
      const wantK = new Float32Array(R * nKv * hd);
      const gk = new Float32Array(R * nKv * hd);
      const wantV = new Float32Array(R * nKv * hd);
      const gv = new Float32Array(R * nKv * hd);
      rows.forEach((r, i) => {
        const q = qkvHost.slice(i * rowLen, i * rowLen + nH * hd);
        refRope(q, 0, nH, hd, r.position, table);
        wantQ.set(q, i * nH * hd);
        gq.set(gotQkv.subarray(i * rowLen, i * rowLen + nH * hd), i * nH * hd);
        const kk = qkvHost.slice(i * rowLen + nH * hd, i * rowLen + (nH + nKv) * hd);
        refRope(kk, 0, nKv, hd, r.position, table);
        wantK.set(kk, i * nKv * hd);
        gk.set(gotK.subarray(r.slot * nKv * hd, (r.slot + 1) * nKv * hd), i * nKv * hd);
        wantV.set(qkvHost.subarray(i * rowLen + (nH + nKv) * hd, (i + 1) * rowLen), i * nKv * hd);
        gv.set(gotV.subarray(r.slot * nKv * hd, (r.slot + 1) * nKv * hd), i * nKv * hd);
      });
      // Rows may share a slot (13 i + 5 mod 80 repeats after 80 rows only), so each row's slot is its own.
      check(out, `rope q heads=${nH} hd=${hd} R=${R}`, gq, wantQ, 1e-5);
      check(out, `rope k->pool kv=${nKv} hd=${hd} R=${R}`, gk, wantK, 1e-5);
      check(out, `v->pool kv=${nKv} hd=${hd} R=${R}`, gv, wantV, 0);
    }
  }
  return out;
}

// ---- compile errors -----------------------------------------------------------------------------------

const OK_WGSL = `@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < arrayLength(&out)) { out[g.x] = helper(g.x); }
}
`;

/**
 * Deliberately broken WGSL through compileKernel (createKernel: the path every pipeline of Kernels
 * takes): a ShaderCompileError whose message names the file and the line:column of the error, also
 * in a file joined after the first; a pipeline WebGPU refuses (no such entry point) is one too.
 * And every real kernel variant this adapter can get compiles through the same check (ready()).
 */
export async function testShaderCompileErrors(): Promise<Check[]> {
  const c = await gpu();
  const dev = c.device;
  const out: Check[] = [];
  const expectError = async (name: string, source: KernelSource, want: RegExp, entryPoint = 'main') => {
    try {
      await compileKernel(dev, name, source, entryPoint);
      out.push({ name: `${name}: compiled, expected a ShaderCompileError matching ${want}`, maxErr: 1, tol: 0, ok: false });
    } catch (e) {
      const ok = e instanceof ShaderCompileError && e.code === 'shader-compile' && e.kernel === name && want.test(e.message);
      out.push({ name: `${name}: ${ok ? 'ShaderCompileError' : `wanted ShaderCompileError matching ${want}, got`} ${JSON.stringify(errorMessage(e))}`, maxErr: ok ? 0 : 1, tol: 0, ok });
    }
  };
  const helper = 'fn helper(i: u32) -> u32 {\n  return i * 3u;\n}\n';
  // Line 4, column 40: an unknown identifier.
  const broken = OK_WGSL.replace('out[g.x] = helper(g.x);', 'out[g.x] = helper(g.x) + notDeclared;') + helper;
  await expectError('broken.wgsl', broken, /^WGSL kernel broken\.wgsl does not compile \(\d+ errors?\):\n {2}broken\.wgsl:4:\d+: error: .*notDeclared/);
  // The error in the second file: its own name and line (3), not the joined source's.
  await expectError('two-files', [{ file: 'main.wgsl', code: OK_WGSL }, { file: 'helper.wgsl', code: 'fn helper(i: u32) -> u32 {\n  let a = 1u;\n  return i * a * f32(2);\n}\n' }], /WGSL kernel main\.wgsl \+ helper\.wgsl \(pipeline "two-files"\) does not compile[\s\S]*\n {2}helper\.wgsl:3:\d+: error: /);
  await expectError('no-entry', OK_WGSL + helper, /no-entry.*compiled, but WebGPU refused its pipeline/, 'nope');
  try {
    await compileKernel(dev, 'ok.wgsl', OK_WGSL + helper);
    out.push({ name: 'valid WGSL compiles', maxErr: 0, tol: 0, ok: true });
  } catch (e) {
    out.push({ name: `valid WGSL: ${errorMessage(e)}`, maxErr: 1, tol: 0, ok: false });
  }
  // Every kernel variant of the adapter through Kernels.ready().
  const kernelSets = matmulConfigs(c);
  for (const attention of ['serial', 'workgroup'] as const) {
    const k = new Kernels(c, { attention });
    k.attention();
    kernelSets.push({ name: `attention ${attention}`, k, full: false });
  }
  for (const { name, k } of kernelSets) {
    for (const format of ['f32', 'f16', 'q8_0', 'q4_0'] as WeightFormat[]) {
      for (const v of [{}, { bias: true }, { residual: true }, { gated: true }]) k.matmul({ format, ...v });
      if (format === 'f32' || format === 'f16') k.embed(format);
    }
    k.rmsnorm();
    k.rope();
    k.sample();
    k.copy();
    try {
      await k.ready();
      out.push({ name: `every kernel [${name}] compiles`, maxErr: 0, tol: 0, ok: true });
    } catch (e) {
      out.push({ name: `kernels [${name}]: ${errorMessage(e)}`, maxErr: 1, tol: 0, ok: false });
    }
  }
  return out;
}

// ---- f16 widening --------------------------------------------------------------------------------------

const WIDEN_TEST_WGSL = `
@group(0) @binding(0) var<storage, read> w0: array</*@WTYPE*/vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
fn loadW0(i: u32) -> vec4<f32> {
  /*@LOAD0*/return w0[i];
}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < arrayLength(&out)) { out[g.x] = loadW0(g.x); }
}
`;
/** A kernel writing out[i] = the four halves of w0[i] as f32, as `body` computes them from `p`. */
const widenTestWgsl = (body: string, enable = '') => `${enable}
@group(0) @binding(0) var<storage, read> w0: array<vec2<u32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x >= arrayLength(&out)) { return; }
  let p = w0[g.x];
  ${body}
}
`;
/** widenHalf (the scales of quantized blocks) on each half of each u32; the other half is garbage to it. */
const WIDEN_HALF_TEST_WGSL = widenTestWgsl('out[g.x] = vec4<f32>(widenHalf(p.x), widenHalf(p.x >> 16u), widenHalf(p.y), widenHalf(p.y >> 16u));');
/** The same conversion with WGSL's builtin unpack2x16float, or with native f16 (shader-f16). */
const builtinWidenWgsl = (native: boolean) =>
  native
    ? widenTestWgsl('out[g.x] = vec4<f32>(vec2<f32>(bitcast<vec2<f16>>(p.x)), vec2<f32>(bitcast<vec2<f16>>(p.y)));', 'enable f16;')
    : widenTestWgsl('out[g.x] = vec4<f32>(unpack2x16float(p.x), unpack2x16float(p.y));');

/**
 * Every finite half (both signs, subnormals included) through the weight loader the f16 kernels use
 * (widenHalves, shaders/widen-halves.wgsl): bitwise equal to the exact value. unpack2x16float and native
 * f16 (where the adapter has shader-f16) are measured too, for information: WGSL lets them flush
 * subnormals, so they do not fail the check.
 */
export async function testHalfWidening(): Promise<Check[]> {
  const c = await gpu();
  const dev = c.device;
  const halves: number[] = [];
  for (let h = 0; h < 0x10000; h++) if ((h & 0x7c00) !== 0x7c00) halves.push(h);
  while (halves.length % 4) halves.push(0);
  const bits = Uint16Array.from(halves);
  const want = Float32Array.from(halves, f16BitsToF32);
  const wantU = new Uint32Array(want.buffer);
  const n4 = halves.length / 4;
  const out: Check[] = [];
  const variants: { name: string; code: string; required: boolean }[] = [
    { name: 'widenHalves (kernel loader)', code: specialiseWeights(WIDEN_TEST_WGSL, 'f16'), required: true },
    { name: 'widenHalf (quantized block scales)', code: specialiseWeights(WIDEN_HALF_TEST_WGSL, 'f16'), required: true },
    { name: 'unpack2x16float (info)', code: builtinWidenWgsl(false), required: false },
  ];
  if (c.features.shaderF16) variants.push({ name: 'native f16 via shader-f16 (info)', code: builtinWidenWgsl(true), required: false });
  for (const v of variants) {
    dev.pushErrorScope('validation');
    const module = dev.createShaderModule({ label: v.name, code: v.code });
    const pipe = dev.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    const src = storageBuffer(dev, bits);
    const o = emptyBuffer(dev, halves.length * 4);
    const enc = dev.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipe);
    pass.setBindGroup(0, dev.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: o, size: n4 * 16 } }] }));
    pass.dispatchWorkgroups(Math.ceil(n4 / 64));
    pass.end();
    dev.queue.submit([enc.finish()]);
    const err = await dev.popErrorScope();
    if (err) throw new Error(`${v.name}: ${err.message}`);
    const got = new Float32Array(await readBuffer(dev, o, halves.length * 4));
    const gotU = new Uint32Array(got.buffer);
    let differing = 0;
    let subDiffering = 0;
    let maxErr = 0;
    for (let i = 0; i < halves.length; i++) {
      if (gotU[i] === wantU[i]) continue;
      differing++;
      if ((halves[i] & 0x7c00) === 0) subDiffering++;
      const d = Math.abs(got[i] - want[i]);
      maxErr = Number.isNaN(d) ? Infinity : Math.max(maxErr, d);
    }
    out.push({ name: `${v.name}: ${halves.length} halves, ${differing} not bitwise exact (${subDiffering} of them zero/subnormal)`, maxErr, tol: 0, ok: !v.required || differing === 0 });
    src.destroy();
    o.destroy();
  }
  return out;
}

// ---- attention --------------------------------------------------------------------------------------

export async function testAttention(): Promise<Check[]> {
  const c = await gpu();
  const out: Check[] = [];
  for (const variant of ['serial', 'workgroup'] as const) out.push(...(await attentionCases(new Kernels(c, { attention: variant }), variant)));
  return out;
}

/**
 * Attention of the given variant vs the CPU reference: plain, with an f16 KV pool (the reference on
 * the same halves), and split-K (first pass + reduce, entries per split `SPLIT_MIN`) vs the plain
 * kernel's output on the same inputs, including lists of 4000 entries (16 splits, the most).
 */
async function attentionCases(k: Kernels, variant: string): Promise<Check[]> {
  const c = k.ctx;
  const dev = c.device;
  const rand = seededRandom(7);
  const out: Check[] = [];
  const SPLIT_MIN = 64;
  const cases: [number, number, number, number, number][] = [
    // nH, nKv, hd, committed, R
    [4, 2, 32, 0, 1],
    [4, 2, 32, 9, 5],
    [3, 1, 64, 37, 64],
    [8, 2, 64, 1500, 3], // longer than one 1024-entry chunk
    [8, 4, 32, 4000, 2], // split-K: 16 splits of 250
  ];
  for (const [nH, nKv, hd, nC, R] of cases) {
    const numSlots = nC + 2 * R + 10;
    const rowLen = (nH + 2 * nKv) * hd;
    const kvDim = nKv * hd;
    const Kh = randomArray(numSlots * kvDim, rand, 1.5);
    const Vh = randomArray(numSlots * kvDim, rand);
    const qkvHost = randomArray(R * rowLen, rand, 1.5);
    // Committed: a shuffled set of slots; ancestors: random others.
    const perm = Array.from({ length: numSlots }, (_, i) => i);
    for (let i = perm.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    const committed = perm.slice(0, nC);
    const free = perm.slice(nC);
    const rows = Array.from({ length: R }, (_, i) => ({
      slot: free[i],
      ancestors: free.slice(R, R + Math.floor(rand() * 6)),
    }));
    const { data, rowsOff } = buildMeta(rows, committed);
    const meta = storageBuffer(dev, data);
    const qkv = storageBuffer(dev, qkvHost);
    const partOff = R * nH * hd;
    const params = attentionParams(k, { numHeads: nH, numKvHeads: nKv, headDim: hd, rowsOff, split: { min: SPLIT_MIN, partOff } });
    const reference = (K: Float32Array, V: Float32Array) => {
      const want = new Float32Array(R * nH * hd);
      rows.forEach((r, i) => {
        const list = [...committed, ...r.ancestors, r.slot];
        want.set(
          refAttention(
            qkvHost.slice(i * rowLen, i * rowLen + nH * hd),
            list.map((s) => K.subarray(s * kvDim, (s + 1) * kvDim)),
            list.map((s) => V.subarray(s * kvDim, (s + 1) * kvDim)),
            nH,
            nKv,
            hd,
          ),
          i * nH * hd,
        );
      });
      return want;
    };
    const name = `attention [${variant}] heads=${nH}/${nKv} hd=${hd} committed=${nC} R=${R}`;
    for (const kv16 of [false, true]) {
      // f16 pools: the halves of K and V, two per u32; the reference gets the same values widened.
      const half = (a: Float32Array) => Uint16Array.from(a, f32ToF16Bits);
      const K = kv16 ? Float32Array.from(half(Kh), f16BitsToF32) : Kh;
      const V = kv16 ? Float32Array.from(half(Vh), f16BitsToF32) : Vh;
      const pools = kv16 ? [storageBuffer(dev, half(Kh)), storageBuffer(dev, half(Vh))] : [storageBuffer(dev, Kh), storageBuffer(dev, Vh)];
      const run = async (split: boolean) => {
        const o = emptyBuffer(dev, (partOff + R * nH * 16 * (hd + 4)) * 4);
        await runOne(k, k.attention({ kv16, split }), [params, meta, qkv, ...pools, o], k.attentionGrid(R, nH, split));
        if (split) await runOne(k, k.attentionReduce(), [params, meta, o], [Math.ceil((R * nH * hd) / 4 / 64), 1]);
        const got = new Float32Array(await readBuffer(dev, o, R * nH * hd * 4));
        o.destroy();
        return got;
      };
      const plain = await run(false);
      const want = reference(K, V);
      const kvName = kv16 ? ' KV f16' : '';
      check(out, `${name}${kvName}`, plain, want, 2e-5);
      if (nC >= 2 * SPLIT_MIN) {
        const split = await run(true);
        check(out, `${name}${kvName} split-K (${Math.min(16, Math.floor((nC + 1) / SPLIT_MIN))}+ splits) vs reference`, split, want, 2e-5);
        check(out, `${name}${kvName} split-K vs the plain kernel`, split, plain, 2e-6);
      }
      for (const b of pools) b.destroy();
    }
    for (const b of [meta, qkv, params]) b.destroy();
  }
  return out;
}

/**
 * The GPU top-k (shaders/topk.wgsl) vs src/speculative/sampling.ts on the CPU: ids (best first, ties
 * to the lower id) equal topKIndices(logSoftmax(logits, T), k), log-probs within 2e-5; rows with
 * planted ties, k from 1 to TOPK_MAX, temperatures 1, 0.7, 2.5 and 0 (meaning 1).
 */
export async function testTopK(): Promise<Check[]> {
  const c = await gpu();
  const k = new Kernels(c);
  const dev = c.device;
  const rand = seededRandom(31);
  const out: Check[] = [];
  for (const V of [301, 4096, 5003]) {
    const R = 6;
    const logits = randomArray(R * V, rand, 6);
    // Ties: row 1 has its best value three times; row 2 a tie straddling the k-th place.
    for (const i of [7, 100, 299]) logits[V + i] = 40;
    for (const i of [3, 50, 51, 200]) logits[2 * V + i] = 9;
    for (const [kk, T] of [[1, 1], [5, 0.7], [TOPK_MAX, 2.5], [3, 0]] as [number, number][]) {
      const params = k.uniform([V, kk, { f: T > 0 ? T : 1 }, 0]);
      const meta = storageBuffer(dev, buildMeta(Array.from({ length: R }, () => ({}))).data);
      const cand = emptyBuffer(dev, R * 2 * kk * 4);
      await runOne(k, k.topk(), [params, meta, storageBuffer(dev, logits), cand], [R, 1]);
      const got = await readBuffer(dev, cand, R * 2 * kk * 4);
      let idsDiffer = 0;
      let maxErr = 0;
      for (let r = 0; r < R; r++) {
        const lp = logSoftmax(logits.subarray(r * V, (r + 1) * V), T);
        const want = topKIndices(lp, kk);
        const ids = new Int32Array(got, r * 2 * kk * 4, kk);
        const lps = new Float32Array(got, (r * 2 + 1) * kk * 4, kk);
        want.forEach((id, j) => {
          if (ids[j] !== id) idsDiffer++;
          maxErr = Math.max(maxErr, Math.abs(lps[j] - lp[id]));
        });
      }
      out.push({ name: `top-k V=${V} k=${kk} T=${T}: ${idsDiffer} ids differ`, maxErr, tol: 2e-5, ok: idsDiffer === 0 && maxErr <= 2e-5 });
    }
  }
  return out;
}

// ---- sampling -----------------------------------------------------------------------------------------

export async function testSampling(): Promise<{ checked: number; skipped: number; mismatches: string[] }> {
  const c = await gpu();
  const k = new Kernels(c);
  const dev = c.device;
  const rand = seededRandom(99);
  const mismatches: string[] = [];
  let checked = 0;
  let skipped = 0;
  const settings: Omit<RowSampling, 'uniform'>[] = [
    { temperature: 0, topK: 0, topP: 1 },
    { temperature: 1, topK: 0, topP: 1 },
    { temperature: 0.7, topK: 5, topP: 1 },
    { temperature: 1.3, topK: 0, topP: 0.9 },
    { temperature: 0.8, topK: 40, topP: 0.5 },
    { temperature: 1, topK: 1, topP: 1 },
    { temperature: 2, topK: 0, topP: 0.05 },
  ];
  for (const V of [301, 5003]) {
    const R = 64;
    const logits = randomArray(R * V, rand, 4);
    // A few exact ties to exercise the lowest-id rule.
    logits[3 * V + 10] = 50;
    logits[3 * V + 200] = 50;
    const rows = Array.from({ length: R }, (_, i) => ({ sampling: { ...settings[i % settings.length], uniform: rand() } }));
    const { data, rowsOff } = buildMeta(rows);
    const tok = emptyBuffer(dev, R * 4);
    await runOne(k, k.sample(), [k.uniform([V, rowsOff, META.rowStride, 0]), storageBuffer(dev, data), storageBuffer(dev, logits), tok], [R, 1]);
    const got = new Uint32Array(await readBuffer(dev, tok, R * 4));
    rows.forEach((r, i) => {
      const want = refSample(logits, i * V, V, r.sampling);
      if (want.margin < 1e-5) {
        skipped++;
        return;
      }
      checked++;
      if (got[i] !== want.token) mismatches.push(`V=${V} row ${i} ${JSON.stringify(r.sampling)}: gpu ${got[i]} cpu ${want.token}`);
    });
  }
  return { checked, skipped, mismatches };
}

// ---- batch independence ----------------------------------------------------------------------------------

/** The same row alone and at index 37 of a 64-row batch: matmul (f32, f16, q8_0, q4_0) outputs must be bitwise equal. */
export async function testMatmulBatchIndependence(): Promise<{ name: string; differing: number }[]> {
  const c = await gpu();
  const dev = c.device;
  const rand = seededRandom(3);
  const res: { name: string; differing: number }[] = [];
  const outDim = 301;
  for (const { name: cfg, k } of matmulConfigs(c))
  for (const format of ['f32', 'f16', 'q8_0', 'q4_0'] as WeightFormat[]) {
    const inDim = format === 'f32' || format === 'f16' ? 200 : 224;
    for (const v of [{}, { gated: true }, { residual: true, bias: true }, { norm: true, gated: true }, { norm: true, bias: true }]) {
      const w0 = hostTensor('w', [outDim, inDim], randomArray(outDim * inDim, rand, 0.1), format);
      const w1 = hostTensor('w', [outDim, inDim], randomArray(outDim * inDim, rand, 0.1), format);
      const { vecs: b, roles } = matmulVecs(outDim, inDim, rand);
      const xs = randomArray(64 * inDim, rand);
      const y0 = randomArray(64 * outDim, rand);
      const run = async (R: number, x: Float32Array, y: Float32Array) => {
        const yb = storageBuffer(dev, y);
        await runOne(
          k,
          k.matmul({ format, ...v }),
          [matmulParams(k, inDim, outDim, format, roles), storageBuffer(dev, buildMeta(Array.from({ length: R }, () => ({}))).data), storageBuffer(dev, x), storageBuffer(dev, w0.data), storageBuffer(dev, w1.data), storageBuffer(dev, b), yb],
          matmulGrid(outDim, k.lanes, k.matmulWorkgroup),
        );
        return new Float32Array(await readBuffer(dev, yb, R * outDim * 4));
      };
      const all = await run(64, xs, y0);
      const alone = await run(1, xs.slice(37 * inDim, 38 * inDim), y0.slice(37 * outDim, 38 * outDim));
      let differing = 0;
      for (let o = 0; o < outDim; o++) if (!Object.is(alone[o], all[37 * outDim + o])) differing++;
      res.push({ name: `matmul [${cfg}] ${format} ${JSON.stringify(v)}`, differing });
    }
  }
  return res;
}

// ---- whole stages ------------------------------------------------------------------------------------------

/** Kernel variants a test stage uses: the adapter's defaults, or the ones GPUs get; quantized projections. */
type Variants = { gpuVariants?: boolean; quant?: QuantFormat; opts?: Partial<StageOptions> };

/** A random tiny Llama for stage tests (intermediate 160 when quantized: input sizes multiples of 32). */
function testModel(arg: { format: DenseFormat } & Variants, seed: number, over: Partial<ModelSpec> = {}): { spec: ModelSpec; tensors: (name: string) => HostTensor } {
  const spec = tinyLlamaSpec({ ...(arg.quant ? { intermediateSize: 160 } : {}), ...over });
  return { spec, tensors: getter(randomLlamaTensors(spec, seed, arg.format, arg.quant)) };
}
function variantOpts(a: Variants): Partial<StageOptions> {
  return { ...(a.gpuVariants ? { lanes: DEFAULT_LANES, attention: 'workgroup', matmulWorkgroup: 64 } : {}), ...a.opts };
}

function fullRole(spec: ModelSpec): StageRole {
  return { layers: { start: 0, end: spec.numLayers }, embed: true, head: true };
}

function seqBatch(tokens: number[], pos0: number, slot0: number, ancestorsBefore: number[] = []): RowBatch {
  const R = tokens.length;
  return {
    tokens: Int32Array.from(tokens),
    positions: Int32Array.from(tokens, (_, i) => pos0 + i),
    slots: Int32Array.from(tokens, (_, i) => slot0 + i),
    ancestors: tokens.map((_, i) => Int32Array.from([...ancestorsBefore, ...Array.from({ length: i }, (_, j) => slot0 + j)])),
    logitsRows: Array.from({ length: R }, (_, i) => i),
  };
}

export interface StageCompare {
  name: string;
  maxErr: number;
  maxLogit: number;
  tokensEqual: boolean;
}

/** Prompt as one batch, then decode steps one row at a time with commits; logits vs RefStage. */
export async function testStageVsReference(arg: { format: DenseFormat; qwen?: boolean; tied?: boolean } & Variants): Promise<StageCompare[]> {
  const c = await gpu();
  const { spec, tensors } = testModel(arg, 1234, arg.qwen ? { architecture: 'Qwen2ForCausalLM', attentionBias: true, headDim: 32, numHeads: 2, numKvHeads: 1, hiddenSize: 68, tieWordEmbeddings: !!arg.tied } : { tieWordEmbeddings: !!arg.tied });
  const numSlots = 64;
  const gpuStage = await Stage.create(c, spec, fullRole(spec), tensors, { numSlots, maxRows: 64, ...variantOpts(arg) });
  const ref = new RefStage(spec, fullRole(spec), tensors, numSlots);
  const out: StageCompare[] = [];
  const cmp = async (name: string, b: RowBatch) => {
    const g = await gpuStage.forward(b);
    const r = ref.forward(b);
    let maxLogit = 0;
    for (const v of r.logits!) maxLogit = Math.max(maxLogit, Math.abs(v));
    out.push({ name, maxErr: maxAbs(g.logits!, r.logits!), maxLogit, tokensEqual: g.tokens!.join() === r.tokens!.join() });
    return r.tokens!;
  };
  const prompt = [1, 17, 250, 3, 99, 42, 7, 300, 12];
  let toks = await cmp('prompt (9 rows)', seqBatch(prompt, 0, 0));
  const commit = (slots: number[]) => {
    gpuStage.kv.commit(slots);
    ref.kv.commit(slots);
  };
  commit(prompt.map((_, i) => i));
  let next = toks[toks.length - 1];
  for (let step = 0; step < 4; step++) {
    const pos = prompt.length + step;
    toks = await cmp(`decode step ${step}`, seqBatch([next], pos, pos));
    commit([pos]);
    next = toks[0];
  }
  gpuStage.destroy();
  return out;
}

/** Same row alone vs in a 64-row batch through a whole stage: logits bitwise equal. */
export async function testStageBatchIndependence(arg: { format: DenseFormat } & Variants): Promise<{ differing: number; maxErr: number }> {
  const c = await gpu();
  const { spec, tensors } = testModel(arg, 77);
  const st = await Stage.create(c, spec, fullRole(spec), tensors, { numSlots: 200, ...variantOpts(arg) });
  const prompt = [5, 6, 7, 8, 9];
  await st.forward(seqBatch(prompt, 0, 0));
  st.kv.commit([0, 1, 2, 3, 4]);
  // 64 independent rows (siblings at position 5), each with its own slot; row 37 is the probe.
  const rand = seededRandom(8);
  const tokens = Array.from({ length: 64 }, () => Math.floor(rand() * spec.vocabSize));
  const big: RowBatch = {
    tokens: Int32Array.from(tokens),
    positions: new Int32Array(64).fill(5),
    slots: Int32Array.from(tokens, (_, i) => 10 + i),
    ancestors: tokens.map(() => new Int32Array(0)),
    logitsRows: [37],
  };
  const a = await st.forward(big);
  const single: RowBatch = { tokens: Int32Array.from([tokens[37]]), positions: Int32Array.from([5]), slots: Int32Array.from([150]), ancestors: [new Int32Array(0)], logitsRows: [0] };
  const b = await st.forward(single);
  let differing = 0;
  for (let i = 0; i < spec.vocabSize; i++) if (!Object.is(a.logits![i], b.logits![i])) differing++;
  st.destroy();
  return { differing, maxErr: maxAbs(a.logits!, b.logits!) };
}

/**
 * A token tree computed in one batch (rows with ancestors) vs each root-to-leaf path run as a plain
 * sequence: the logits of every tree row equal those of the same node on its path, bitwise.
 */
export async function testTreeAttention(arg: { format: DenseFormat } & Variants): Promise<{ rows: number; differing: number; maxErr: number; refMaxErr: number }> {
  const c = await gpu();
  const { spec, tensors } = testModel(arg, 4321);
  const st = await Stage.create(c, spec, fullRole(spec), tensors, { numSlots: 128, ...variantOpts(arg) });
  const ref = new RefStage(spec, fullRole(spec), tensors, 128);
  const prefix = [1, 40, 41, 42, 43];
  await st.forward(seqBatch(prefix, 0, 0));
  ref.forward(seqBatch(prefix, 0, 0));
  st.kv.commit([0, 1, 2, 3, 4]);
  ref.kv.commit([0, 1, 2, 3, 4]);
  // Tree: A(pos 5) -> B, C (pos 6); B -> D, E (pos 7); C -> F (pos 7).
  const nodes = [
    { tok: 100, parent: -1 },
    { tok: 101, parent: 0 },
    { tok: 102, parent: 0 },
    { tok: 103, parent: 1 },
    { tok: 104, parent: 1 },
    { tok: 105, parent: 2 },
  ];
  const slotOf = (i: number) => 20 + i;
  const anc = (i: number): number[] => (nodes[i].parent < 0 ? [] : [...anc(nodes[i].parent), nodes[i].parent]);
  const depth = (i: number): number => anc(i).length;
  const tree: RowBatch = {
    tokens: Int32Array.from(nodes.map((n) => n.tok)),
    positions: Int32Array.from(nodes.map((_, i) => 5 + depth(i))),
    slots: Int32Array.from(nodes.map((_, i) => slotOf(i))),
    ancestors: nodes.map((_, i) => Int32Array.from(anc(i).map(slotOf))),
    logitsRows: nodes.map((_, i) => i),
  };
  const tg = await st.forward(tree);
  const tr = ref.forward(tree);
  const V = spec.vocabSize;
  let differing = 0;
  let maxErr = 0;
  let rows = 0;
  let slotBase = 60;
  for (const leaf of [3, 4, 5]) {
    const path = [...anc(leaf), leaf];
    const b = seqBatch(path.map((i) => nodes[i].tok), 5, slotBase);
    slotBase += path.length;
    const pg = await st.forward(b);
    path.forEach((node, j) => {
      rows++;
      const a = tg.logits!.subarray(node * V, (node + 1) * V);
      const p = pg.logits!.subarray(j * V, (j + 1) * V);
      for (let i = 0; i < V; i++) if (!Object.is(a[i], p[i])) differing++;
      maxErr = Math.max(maxErr, maxAbs(a, p));
    });
  }
  st.destroy();
  return { rows, differing, maxErr, refMaxErr: maxAbs(tg.logits!, tr.logits!) };
}

/** Layers [0,2) + [2,4) as two stages vs one stage [0,4): same logits (bitwise). */
export async function testStageSplit(arg: { format: DenseFormat } & Variants): Promise<{ differing: number; maxErr: number; hiddenLen: number }> {
  const c = await gpu();
  const { spec, tensors } = testModel(arg, 555);
  const whole = await Stage.create(c, spec, fullRole(spec), tensors, { numSlots: 64 });
  const s1 = await Stage.create(c, spec, { layers: { start: 0, end: 2 }, embed: true, head: false }, tensors, { numSlots: 64 });
  const s2 = await Stage.create(c, spec, { layers: { start: 2, end: 4 }, embed: false, head: true }, tensors, { numSlots: 64 });
  let differing = 0;
  let maxErr = 0;
  let hiddenLen = 0;
  const steps: RowBatch[] = [seqBatch([1, 2, 3, 4, 5, 6], 0, 0), seqBatch([77], 6, 6), seqBatch([78, 79], 7, 7)];
  const commits = [[0, 1, 2, 3, 4, 5], [6], [7, 8]];
  for (let i = 0; i < steps.length; i++) {
    const w = await whole.forward(steps[i]);
    const h = await s1.forward(steps[i]);
    hiddenLen = h.hidden!.length;
    const { tokens: _t, ...rest } = steps[i];
    const o = await s2.forward({ ...rest, hidden: h.hidden });
    for (let j = 0; j < w.logits!.length; j++) if (!Object.is(w.logits![j], o.logits![j])) differing++;
    maxErr = Math.max(maxErr, maxAbs(w.logits!, o.logits!));
    for (const st of [whole, s1, s2]) st.kv.commit(commits[i]);
  }
  for (const st of [whole, s1, s2]) st.destroy();
  return { differing, maxErr, hiddenLen };
}

export interface QuantBytes {
  format: string;
  weightBytes: number;
  projectionBytes: number;
  /** projectionBytes / the f16 stage's projectionBytes. */
  ratio: number;
}

/** The same random model as whole stages with f16, Q8_0 and Q4_0 projections: GPU weight bytes. */
export async function testQuantBytes(): Promise<QuantBytes[]> {
  const c = await gpu();
  const out: QuantBytes[] = [];
  let f16 = 0;
  for (const quant of [undefined, 'q8_0', 'q4_0'] as const) {
    const { spec, tensors } = testModel({ format: 'f16', quant }, 9, { intermediateSize: 160 });
    const st = await Stage.create(c, spec, fullRole(spec), tensors, { numSlots: 16, widenF16: false });
    if (!quant) f16 = st.projectionBytes;
    out.push({ format: quant ?? 'f16', weightBytes: st.weightBytes, projectionBytes: st.projectionBytes, ratio: st.projectionBytes / f16 });
    st.destroy();
  }
  return out;
}

/**
 * Dispatches per layer and per forward: 5 per layer fused for 1, 4 and 64 rows (8 unfused), 6 with
 * split-K attention on a long list; embed + head + sample (or top-k) around them; KV bytes halved by f16.
 */
export async function testDispatchCounts(): Promise<{ name: string; got: number; want: number }[]> {
  const c = await gpu();
  const { spec, tensors } = testModel({ format: 'f16' }, 21);
  const L = spec.numLayers;
  const out: { name: string; got: number; want: number }[] = [];
  const row = (R: number, anc = 0): RowBatch => ({
    tokens: new Int32Array(R).fill(3),
    positions: new Int32Array(R).fill(anc),
    slots: Int32Array.from({ length: R }, (_, i) => 300 + i),
    ancestors: Array.from({ length: R }, () => Int32Array.from({ length: anc }, (_, j) => j)),
  });
  const kvBytes: Record<string, number> = {};
  for (const [name, opts] of [['fused', {}], ['fused f16 KV', { kvDtype: 'f16' }], ['unfused', { fused: false }]] as [string, Partial<StageOptions>][]) {
    const st = await Stage.create(c, spec, fullRole(spec), tensors, { numSlots: 400, attentionSplit: 64, ...opts });
    const perLayer = st.fused ? 5 : 8;
    out.push({ name: `${name}: dispatchesPerLayer`, got: st.dispatchesPerLayer, want: perLayer });
    for (const R of [1, 4, 64]) out.push({ name: `${name}: forward of ${R} rows`, got: st.dispatchCount(row(R)), want: 1 + perLayer * L + (st.fused ? 2 : 3) });
    // 200 ancestors: attend lists of 201 >= 2 * 64 entries, so split-K (+1 per layer).
    out.push({ name: `${name}: forward with split-K attention`, got: st.dispatchCount(row(2, 200)), want: 1 + (perLayer + 1) * L + (st.fused ? 2 : 3) });
    out.push({ name: `${name}: candidates without sampling (top-k instead of sample)`, got: st.dispatchCount({ ...row(2), candidates: { k: 4, temperature: 1 } }), want: 1 + perLayer * L + (st.fused ? 2 : 3) });
    kvBytes[name] = st.kvBytes;
    st.destroy();
  }
  const kvDim = spec.numKvHeads * spec.headDim;
  out.push({ name: 'kvBytes f32', got: kvBytes.fused, want: 2 * L * 400 * kvDim * 4 });
  out.push({ name: 'kvBytes f16 (half)', got: kvBytes['fused f16 KV'], want: kvBytes.fused / 2 });
  return out;
}

/**
 * Candidates from a stage (the GPU top-k after the head) vs the CPU on the full logits of the same
 * forward: ids equal topKIndices(logSoftmax(logits, T), k), log-probs within 2e-5; tokens only when
 * sampling is asked for.
 */
export async function testStageCandidates(arg: { format: DenseFormat } & Variants): Promise<Check[]> {
  const c = await gpu();
  const { spec, tensors } = testModel(arg, 99);
  const st = await Stage.create(c, spec, fullRole(spec), tensors, { numSlots: 64, ...variantOpts(arg) });
  const prompt = [4, 9, 16, 25, 36];
  await st.forward(seqBatch(prompt, 0, 0));
  st.kv.commit([0, 1, 2, 3, 4]);
  const out: Check[] = [];
  const tree: RowBatch = { tokens: Int32Array.of(7, 8, 9), positions: Int32Array.of(5, 5, 6), slots: Int32Array.of(10, 11, 12), ancestors: [new Int32Array(0), new Int32Array(0), Int32Array.of(10)] };
  const full = await st.forward({ ...tree, logitsRows: [0, 1, 2] });
  const V = spec.vocabSize;
  for (const [k, T, rows, sampling] of [[4, 1, [0, 2], false], [TOPK_MAX, 0.6, undefined, true], [1, 0, [1], false]] as [number, number, number[] | undefined, boolean][]) {
    const res = await st.forward({ ...tree, logitsRows: rows, candidates: { k, temperature: T }, sampling: sampling ? [0, 1, 2].map(() => ({ temperature: 0, topK: 0, topP: 1, uniform: 0 })) : undefined });
    const which = rows ?? [0, 1, 2];
    let idsDiffer = 0;
    let maxErr = 0;
    which.forEach((r, i) => {
      const lp = logSoftmax(full.logits!.subarray(r * V, (r + 1) * V), T);
      topKIndices(lp, k).forEach((id, j) => {
        if (res.candidates!.ids[i * k + j] !== id) idsDiffer++;
        maxErr = Math.max(maxErr, Math.abs(res.candidates!.logprobs[i * k + j] - lp[id]));
      });
    });
    const tokensOk = sampling ? res.tokens?.join() === full.tokens!.join() : res.tokens === undefined && res.logits === undefined;
    out.push({ name: `stage candidates k=${k} T=${T} rows ${which.join(',')}: ${idsDiffer} ids differ, tokens ${tokensOk ? 'as expected' : 'WRONG'}`, maxErr, tol: 2e-5, ok: idsDiffer === 0 && maxErr <= 2e-5 && tokensOk && res.candidates!.ids.length === which.length * k });
  }
  st.destroy();
  return out;
}

export type { HostTensor };
