// Smallest proof that the harness has WebGPU (report the adapter), and GpuContext.lost on an intentional destroy.
import { createGpuContext } from '../../src/gpu/device.ts';

export async function adapterInfo(): Promise<{ vendor: string; architecture: string; features: string[] }> {
  if (!navigator.gpu) throw new Error('navigator.gpu is missing: not a secure context or WebGPU disabled');
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter');
  return { vendor: adapter.info.vendor, architecture: adapter.info.architecture, features: [...adapter.features] };
}

/**
 * createGpuContext on this browser, then an intentional device.destroy(): the device's own `lost`
 * resolves with reason 'destroyed', and GpuContext.lost (which only reports losses we did not ask
 * for) stays pending.
 */
export async function intentionalDestroy(): Promise<{ deviceLostReason: string; contextLost: string }> {
  const ctx = await createGpuContext();
  ctx.device.destroy();
  const info = await ctx.device.lost;
  const contextLost = await Promise.race([ctx.lost.then((e) => `resolved: ${e.message}`), new Promise<string>((r) => setTimeout(() => r('pending'), 200))]);
  return { deviceLostReason: info.reason, contextLost };
}
