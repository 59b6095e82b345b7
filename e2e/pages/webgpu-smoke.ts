// Smallest proof that the harness has WebGPU: report the adapter.
export async function adapterInfo(): Promise<{ vendor: string; architecture: string; features: string[] }> {
  if (!navigator.gpu) throw new Error('navigator.gpu is missing: not a secure context or WebGPU disabled');
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter');
  return { vendor: adapter.info.vendor, architecture: adapter.info.architecture, features: [...adapter.features] };
}
