// Adapter + device with the limits inference needs, and what the adapter can do.

export interface GpuFeatures {
  subgroups: boolean;
  shaderF16: boolean;
  timestampQuery: boolean;
}

export interface GpuContext {
  adapter: GPUAdapter;
  device: GPUDevice;
  features: GpuFeatures;
  /** e.g. "google swiftshader (fallback)". */
  description: string;
  info: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter: boolean };
  limits: { maxStorageBufferBindingSize: number; maxBufferSize: number; maxComputeWorkgroupStorageSize: number };
}

export interface GpuContextOptions {
  powerPreference?: GPUPowerPreference;
}

export async function createGpuContext(opts: GpuContextOptions = {}): Promise<GpuContext> {
  if (typeof navigator === 'undefined' || !navigator.gpu) {
    throw new Error('WebGPU is not available (navigator.gpu is missing: needs a secure context and a WebGPU browser)');
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  if (!adapter) throw new Error('WebGPU: no adapter');
  const has = (f: string): boolean => adapter.features.has(f);
  const features: GpuFeatures = {
    subgroups: has('subgroups'),
    shaderF16: has('shader-f16'),
    timestampQuery: has('timestamp-query'),
  };
  const requiredFeatures: GPUFeatureName[] = [];
  if (features.subgroups) requiredFeatures.push('subgroups' as GPUFeatureName);
  if (features.shaderF16) requiredFeatures.push('shader-f16');
  if (features.timestampQuery) requiredFeatures.push('timestamp-query');
  const al = adapter.limits;
  const limits = {
    maxStorageBufferBindingSize: al.maxStorageBufferBindingSize,
    maxBufferSize: al.maxBufferSize,
    maxComputeWorkgroupStorageSize: Math.min(32768, al.maxComputeWorkgroupStorageSize),
  };
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      ...limits,
      maxStorageBuffersPerShaderStage: Math.min(10, al.maxStorageBuffersPerShaderStage),
    },
  });
  device.lost.then((i) => {
    if (i.reason !== 'destroyed') console.error(`WebGPU device lost: ${i.message}`);
  });
  const ai = adapter.info;
  const fallback = (ai as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false;
  const info = {
    vendor: ai.vendor,
    architecture: ai.architecture,
    device: ai.device,
    description: ai.description,
    isFallbackAdapter: fallback,
  };
  const description = [ai.vendor, ai.architecture, ai.device, ai.description].filter((s) => s).join(' ') + (fallback ? ' (fallback)' : '');
  return { adapter, device, features, description, info, limits };
}
