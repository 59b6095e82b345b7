// Adapter + device with the limits inference needs, and what the adapter can do.
import { DeviceLostError, NoWebGPUError, errorMessage } from '../common/errors.ts';

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
  /**
   * Resolves (never rejects) with a DeviceLostError when the GPU takes the device away: a driver
   * reset or crash, the GPU process restarting, too much memory asked for, a tab in the background
   * for too long. Everything on the device (weights, KV cache, pipelines) is gone by then; the way
   * on is a new context (in practice: reload the page).
   *
   * An intentional `device.destroy()` (reason 'destroyed') is not an error and never resolves this
   * promise: a caller can race it against its work without telling its own shutdown apart.
   */
  readonly lost: Promise<DeviceLostError>;
}

export interface GpuContextOptions {
  powerPreference?: GPUPowerPreference;
}

/** What to do when there is no WebGPU at all. */
const GET_WEBGPU =
  'use Chrome or Edge 113+ (Windows, macOS, ChromeOS) or Safari 26+, over https or on localhost; on Linux start Chrome/Chromium with --enable-unsafe-webgpu';

/**
 * Asks the browser (or Node's `webgpu` package, which installs `navigator.gpu`) for an adapter and a
 * device with the limits and features inference uses.
 * @throws NoWebGPUError when there is no `navigator.gpu`, no adapter, or the adapter refuses a device;
 *   the message says what the user can do about it.
 */
export async function createGpuContext(opts: GpuContextOptions = {}): Promise<GpuContext> {
  if (typeof navigator === 'undefined' || !navigator.gpu) {
    const secure = (globalThis as { isSecureContext?: boolean }).isSecureContext;
    throw new NoWebGPUError(
      secure === false
        ? 'WebGPU is not available: this page is not a secure context. Open it over https or on localhost.'
        : `This browser has no WebGPU: ${GET_WEBGPU}.`,
    );
  }
  let adapter: GPUAdapter | null;
  try {
    adapter = await navigator.gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  } catch (e) {
    throw new NoWebGPUError(`WebGPU could not look for a GPU (${errorMessage(e)}): ${GET_WEBGPU}.`, { cause: e });
  }
  if (!adapter) {
    throw new NoWebGPUError(
      'WebGPU is switched on but found no usable GPU adapter (GPU blocklisted, driver too old, or GPU access turned off): ' +
        'update the GPU driver, check chrome://gpu, or start Chromium with --enable-unsafe-webgpu.',
    );
  }
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
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({
      requiredFeatures,
      requiredLimits: {
        ...limits,
        maxStorageBuffersPerShaderStage: Math.min(10, al.maxStorageBuffersPerShaderStage),
      },
    });
  } catch (e) {
    throw new NoWebGPUError(
      `The GPU adapter refused a WebGPU device (${errorMessage(e)}): close other tabs that use the GPU and reload; if it persists, update the GPU driver.`,
      { cause: e },
    );
  }
  const lost = new Promise<DeviceLostError>((resolve) => {
    device.lost.then(
      (i) => {
        if (i.reason === 'destroyed') return; // our own device.destroy(): not an error (see GpuContext.lost)
        console.error(`WebGPU device lost: ${i.message}`);
        resolve(
          new DeviceLostError(
            i.reason,
            `The GPU device was lost${i.message ? ` (${i.message})` : ''}: the GPU driver reset or the browser reclaimed the GPU. Reload the page to start again.`,
          ),
        );
      },
      () => undefined,
    );
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
  return { adapter, device, features, description, info, limits, lost };
}
