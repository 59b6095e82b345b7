// Typed errors of src/gpu, in Node with fake WebGPU objects: what createGpuContext throws and how
// its `lost` promise behaves, compile errors located by file:line:column, and the argument checks.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createGpuContext } from '../src/gpu/device.ts';
import { compileKernel, joinWgsl, matmulSource } from '../src/gpu/kernels.ts';
import { KvSlots } from '../src/gpu/kv.ts';
import { getter } from '../src/gpu/synthetic-model.ts';
import { BadRequestError, DeviceLostError, ModelFormatError, NoWebGPUError, ShaderCompileError, SpecpipeError } from '../src/common/errors.ts';

function fakeAdapter(lost: Promise<GPUDeviceLostInfo>, requestDevice?: () => Promise<never>): GPUAdapter {
  return {
    features: new Set<string>(),
    limits: { maxStorageBufferBindingSize: 1 << 27, maxBufferSize: 1 << 28, maxComputeWorkgroupStorageSize: 16384, maxStorageBuffersPerShaderStage: 8 },
    info: { vendor: 'test', architecture: '', device: '', description: '' },
    requestDevice: requestDevice ?? (async () => ({ lost })),
  } as unknown as GPUAdapter;
}

function withGpu(gpu: unknown): void {
  vi.stubGlobal('navigator', gpu === undefined ? {} : { gpu });
}

const settled = <T>(p: Promise<T>) => Promise.race([p.then((v) => ({ v })), new Promise<'pending'>((r) => setTimeout(() => r('pending'), 20))]);

describe('createGpuContext', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it('without navigator.gpu: NoWebGPUError saying which browser to use', async () => {
    withGpu(undefined);
    const e = await createGpuContext().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(NoWebGPUError);
    expect(e).toBeInstanceOf(SpecpipeError);
    expect((e as NoWebGPUError).code).toBe('no-webgpu');
    expect((e as Error).message).toMatch(/Chrome or Edge 113\+.*--enable-unsafe-webgpu/);
  });

  it('without an adapter, or when the device is refused: NoWebGPUError', async () => {
    withGpu({ requestAdapter: async () => null });
    await expect(createGpuContext()).rejects.toThrow(NoWebGPUError);
    const refused = fakeAdapter(new Promise(() => {}), async () => {
      throw new Error('limits too high');
    });
    withGpu({ requestAdapter: async () => refused });
    const e = await createGpuContext().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(NoWebGPUError);
    expect((e as Error).message).toMatch(/refused a WebGPU device \(limits too high\)/);
    expect((e as Error).cause).toBeInstanceOf(Error);
  });

  it('lost resolves with a DeviceLostError when the GPU takes the device away', async () => {
    let lose!: (i: GPUDeviceLostInfo) => void;
    withGpu({ requestAdapter: async () => fakeAdapter(new Promise((r) => (lose = r))) });
    const ctx = await createGpuContext();
    expect(await settled(ctx.lost)).toBe('pending');
    const log = vi.spyOn(console, 'error').mockImplementation(() => {});
    lose({ reason: 'unknown', message: 'driver reset' } as GPUDeviceLostInfo);
    const e = await ctx.lost;
    log.mockRestore();
    expect(e).toBeInstanceOf(DeviceLostError);
    expect(e.code).toBe('device-lost');
    expect(e.reason).toBe('unknown');
    expect(e.message).toMatch(/driver reset.*Reload the page/);
  });

  it('lost never resolves on an intentional destroy', async () => {
    let lose!: (i: GPUDeviceLostInfo) => void;
    withGpu({ requestAdapter: async () => fakeAdapter(new Promise((r) => (lose = r))) });
    const ctx = await createGpuContext();
    lose({ reason: 'destroyed', message: '' } as GPUDeviceLostInfo);
    expect(await settled(ctx.lost)).toBe('pending');
  });
});

/** A device whose compiler reports `messages` (and whose pipeline is refused with `refused`). */
function fakeDevice(messages: Partial<GPUCompilationMessage>[], refused: { message: string } | null = null): GPUDevice {
  return {
    pushErrorScope() {},
    popErrorScope: async () => refused,
    createShaderModule: () => ({ getCompilationInfo: async () => ({ messages }) }),
    createComputePipeline: () => ({}),
  } as unknown as GPUDevice;
}

describe('compileKernel', () => {
  it('throws ShaderCompileError with the file:line:column of each error, across joined files', async () => {
    const parts = [
      { file: 'a.wgsl', code: 'line 1\nline 2\nline 3\n' },
      { file: 'b.wgsl', code: 'b1\nbad b2\n' },
    ];
    const dev = fakeDevice([
      { type: 'warning', lineNum: 1, linePos: 1, message: 'meh' },
      { type: 'error', lineNum: 2, linePos: 6, message: 'unresolved value x' },
      { type: 'error', lineNum: 5, linePos: 1, message: 'type mismatch' },
    ]);
    const e = await compileKernel(dev, 'k', parts).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ShaderCompileError);
    expect((e as ShaderCompileError).kernel).toBe('k');
    expect((e as Error).message).toBe(
      'WGSL kernel a.wgsl + b.wgsl (pipeline "k") does not compile (2 errors):\n' +
        '  a.wgsl:2:6: error: unresolved value x\n      line 2\n' +
        '  b.wgsl:2:1: error: type mismatch\n      bad b2',
    );
  });

  it('a pipeline WebGPU refuses is a ShaderCompileError too; a clean compile returns the pipeline', async () => {
    await expect(compileKernel(fakeDevice([], { message: 'no entry point "x"' }), 'k.wgsl', 'code', 'x')).rejects.toThrow(/k\.wgsl.*refused its pipeline: no entry point "x"/);
    await expect(compileKernel(fakeDevice([{ type: 'info', lineNum: 1, linePos: 1, message: 'fine' }]), 'k.wgsl', 'code')).resolves.toEqual({});
  });

  it('joinWgsl locates lines per file', () => {
    const j = joinWgsl([
      { file: 'a', code: 'x\ny' },
      { file: 'b', code: 'z\n' },
    ]);
    expect(j.code).toBe('x\ny\nz\n');
    expect([1, 2, 3].map((n) => j.locate(n))).toEqual([
      { file: 'a', line: 1 },
      { file: 'a', line: 2 },
      { file: 'b', line: 1 },
    ]);
  });

  it('the subgroup matmul keeps matmul.wgsl line numbers', () => {
    const plain = matmulSource({ format: 'f32' }, 32, false).split('\n');
    const sg = matmulSource({ format: 'f32' }, 32, true).split('\n');
    expect(sg.length).toBe(plain.length);
    expect(sg[0].startsWith('enable subgroups;')).toBe(true);
    expect(sg.join('\n')).toContain('subgroupShuffleXor');
    const main = (ls: string[]) => ls.findIndex((l) => l.startsWith('fn main('));
    expect(main(sg)).toBe(main(plain));
    expect(() => matmulSource({ format: 'f32' }, 3)).toThrow(BadRequestError);
  });
});

describe('argument errors', () => {
  it('KV slots: BadRequestError', () => {
    const kv = new KvSlots(4);
    expect(() => kv.check(4)).toThrow(BadRequestError);
    kv.commit([1]);
    expect(() => kv.commit([1])).toThrow(BadRequestError);
  });
  it('a missing tensor: ModelFormatError', () => {
    expect(() => getter(new Map())('lm_head.weight')).toThrow(ModelFormatError);
  });
});
